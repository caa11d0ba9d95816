"""One export's settings: ExportOptions, a frozen dataclass whose every field carries its default
and, in its metadata (the runtime's opt()), its flag, help and range: the one place each is
written. catdog-export's typer command is generated from these fields (export/cli.py), the
pipeline checks the ranges (export/pipeline.py: a library caller's options too), and the builders'
own defaults (opset, the INT8 target) alias them. Kept free of torch and onnx so the CLI starts
(and answers --help) without loading either."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from catdog.runtime.options import Opt, opt


@dataclass(frozen=True)
class ExportOptions:
    """Everything one export is told; catdog-export's flags, help and defaults are these fields'
    (in --help order), ckpt and out required."""

    ckpt: Path = field(metadata=opt(("--ckpt",), "training checkpoint, e.g. RUN/best.pth"))
    out: Path = field(metadata=opt(("--out",), "output folder for the artifacts and the report"))
    # The one way INT8 is asked for: its targets, "cpu" (model.int8.onnx) and "tensorrt"
    # (model.int8-trt.onnx); catdog-export's --int8 (INT8_CPU) and --int8-for spell it (int8_targets).
    int8_for: tuple[str, ...] = field(default=(), metadata=opt(
        ("--int8-for",), "INT8 for a target, repeatable (needs --calib): cpu = model.int8.onnx (as --int8); "
        "tensorrt = model.int8-trt.onnx, symmetric int8 QDQ", repeatable=True))
    calib: Path | None = field(default=None, metadata=opt(
        ("--calib",), "folder of real images for INT8 calibration"))
    fp16: bool = field(default=False, metadata=opt(("--fp16",), "also build model.fp16.onnx (GPU)"))
    bake: bool = field(default=False, metadata=opt(
        ("--bake-preprocess",), "also build model.baked.onnx (uint8 NHWC input)"))
    opset: int = field(default=17, metadata=opt(("--opset",), "ONNX opset"))
    parity: tuple[Path, ...] = field(default=(), metadata=opt(  # each set reported and gated on its own
        ("--parity",), "real images for the parity gates, repeatable: each folder is a set, reported and gated "
        "on its own (default: a sample of --calib)", repeatable=True))
    parity_count: int = field(default=100, metadata=opt(  # per parity set
        ("--parity-count",), "parity images to sample per set", min=1))
    labels_from_names: bool = field(default=False, metadata=opt(
        ("--labels-from-names",), "labels from Kaggle names (cat.1.jpg)"))
    # A key of quantize.CALIB_METHODS, or None: chosen on held-out calibration images (int8_choice).
    calib_method: str | None = field(default=None, metadata=opt(
        ("--calib-method",), "minmax | entropy | percentile (default: minmax or percentile, chosen on held-out "
        "calibration images)"))
    # The CPU class the CPU INT8 is built for: a key of quantize.INT8_FORMATS, or "auto" (this CPU).
    int8_target: str = field(default="avx2", metadata=opt(
        ("--int8-target",), "the CPUs the CPU INT8 is for: avx2 (U8S8, 7-bit weights: exact on every CPU) | vnni "
        "(U8S8, 8-bit weights: AVX-512 VNNI / AVX-VNNI) | arm (S8S8) | auto (this CPU's); recorded in the metadata"))
    int8_activations: str | None = field(default=None, metadata=opt(  # a key of quantize.ACTIVATION_TYPES
        ("--int8-activations",), "override the target's activations: uint8 (U8S8) | int8 (S8S8)"))
    calib_count: int = field(default=200, metadata=opt(
        ("--calib-count",), "calibration images (fewer if the folder has fewer)", min=1))
    # INT8's calibration method (unless given) and fp32 layers chosen on held-out calibration images
    int8_select: bool = field(default=True, metadata=opt(
        ("--int8-select/--no-int8-select",), "choose INT8's calibration method and fp32 layers on held-out "
        "--calib images, never on parity images (off: minmax, stem + classifier in fp32)"))
    select_count: int = field(default=100, metadata=opt(
        ("--select-count",), "held-out calibration images for the INT8 choice", min=1))
    # Per-layer INT8 sensitivity on those images (export/int8/sensitivity.py): the sweep's image count and
    # at most how many extra layers it may keep in fp32.
    int8_sensitivity: bool = field(default=True, metadata=opt(
        ("--int8-sensitivity/--no-int8-sensitivity",), "measure each INT8 layer's error on the held-out images "
        "and keep the most sensitive in fp32 when that closes a gap"))
    sensitivity_count: int = field(default=16, metadata=opt(
        ("--sensitivity-count",), "held-out images of the per-layer sweep (those INT8 gets most wrong)", min=1))
    sensitivity_keep: int = field(default=4, metadata=opt(
        ("--sensitivity-keep",), "at most this many extra layers kept in fp32", min=0))
    tta_flip: bool = field(default=False, metadata=opt(  # inside every artifact
        ("--tta-flip",), "every artifact averages the logits of the image and its mirror image (two passes in "
        "the graph, ~2x the latency)"))
    full_decode: bool = field(default=False, metadata=opt(  # calibration and parity photos
        ("--full-decode",), "decode calibration and parity JPEGs at full size, as catdog-runtime --full-decode "
        "does (default: libjpeg's reduced decode, as deployed)"))
    gates: tuple[str, ...] = field(default=(), metadata=opt(
        ("--gate",), "override a gate: NAME=VALUE, e.g. int8.agreement=0.97", repeatable=True))
    allow_gate_failure: bool = field(default=False, metadata=opt(
        ("--allow-gate-failure",), "publish even if a gate fails"))
    latency_runs: int = field(default=50, metadata=opt(("--latency-runs",), "timed batch-1 runs per artifact"))
    parity_provider: str = field(default="cpu", metadata=opt(
        ("--parity-provider",), "where ONNX parity and latency are measured: cpu | cuda | tensorrt (fp16 "
        "computes in fp16 only on a GPU)"))


# --int8: int8_for's other spelling (--int8-for cpu), a flag of the command but no field of its
# own; catdog-export lists it just before --int8-for and int8_targets folds it in.
INT8_CPU = Opt(("--int8",), "also build model.int8.onnx (needs --calib)")


def int8_targets(cpu: bool, targets: Iterable[str]) -> tuple[str, ...]:
    """ExportOptions.int8_for from its two CLI spellings: --int8 is --int8-for cpu. The order given
    is kept (the first target names the flag in a missing-calibration error), repeats dropped."""
    return tuple(dict.fromkeys((["cpu"] if cpu else []) + list(targets)))
