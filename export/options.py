"""One export's settings, and the one home of their defaults: catdog-export's options read their
defaults from this dataclass, and the builders' own defaults (opset, activations) alias them.
Kept free of torch and onnx so the CLI starts (and answers --help) without loading either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class ExportOptions:
    ckpt: Path
    out: Path
    # The one way INT8 is asked for: its targets, "cpu" (model.int8.onnx) and "tensorrt"
    # (model.int8-trt.onnx); catdog-export's --int8 and --int8-for spell it (int8_targets).
    int8_for: tuple[str, ...] = ()
    calib: Path | None = None
    fp16: bool = False
    bake: bool = False
    opset: int = 17
    parity: tuple[Path, ...] = ()  # parity sets, each reported and gated on its own
    parity_count: int = 100  # per parity set
    labels_from_names: bool = False
    # A key of quantize.CALIB_METHODS, or None: chosen on held-out calibration images (int8_choice).
    calib_method: str | None = None
    # The CPU class the CPU INT8 is built for: a key of quantize.INT8_FORMATS, or "auto" (this CPU).
    int8_target: str = "avx2"
    int8_activations: str | None = None  # a key of quantize.ACTIVATION_TYPES; None: the target's
    calib_count: int = 200
    # INT8's calibration method (unless given) and fp32 layers chosen on held-out calibration images
    int8_select: bool = True
    select_count: int = 100  # held-out calibration images for that choice
    # Per-layer INT8 sensitivity on those images (export/int8/sensitivity.py): the sweep's image count and
    # at most how many extra layers it may keep in fp32.
    int8_sensitivity: bool = True
    sensitivity_count: int = 16
    sensitivity_keep: int = 4
    tta_flip: bool = False  # mean of the logits of the image and its mirror image, inside every artifact
    full_decode: bool = False  # calibration and parity photos: full-size JPEG decode (the runtime's --full-decode)
    gates: tuple[str, ...] = ()
    allow_gate_failure: bool = False
    latency_runs: int = 50
    parity_provider: str = "cpu"  # where the ONNX artifacts' parity and latency are measured (cuda: fp16 on a GPU)


def int8_targets(cpu: bool, targets: Iterable[str]) -> tuple[str, ...]:
    """ExportOptions.int8_for from its two CLI spellings: --int8 is --int8-for cpu. The order given
    is kept (the first target names the flag in a missing-calibration error), repeats dropped."""
    return tuple(dict.fromkeys((["cpu"] if cpu else []) + list(targets)))
