"""One export's settings, and the one home of their defaults: catdog-export's options read their
defaults from this dataclass, and the builders' own defaults (opset, calibration) alias them.
Kept free of torch and onnx so the CLI starts (and answers --help) without loading either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportOptions:
    ckpt: Path
    out: Path
    int8: bool = False
    calib: Path | None = None
    fp16: bool = False
    bake: bool = False
    opset: int = 17
    parity: Path | None = None
    parity_count: int = 100
    labels_from_names: bool = False
    calib_method: str = "minmax"  # a key of quantize.CALIB_METHODS
    int8_activations: str = "uint8"  # a key of quantize.ACTIVATION_TYPES (why uint8: see there)
    calib_count: int = 200
    gates: tuple[str, ...] = ()
    allow_gate_failure: bool = False
    latency_runs: int = 50
    extra_formats: tuple[str, ...] = ()  # artifacts by name, e.g. ("fp16",)
