"""The models shipped inside the runtime package (runtime/assets/, package data): efficientnet_lite0
trained on dogs-vs-cats by scripts/reference-model.sh. `--model fp32|int8` picks one by name."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from catdog.runtime.errors import ModelError

SHIPPED = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
# fp32 is the default: on x86 CPUs without VNNI (AVX2 only, like the reference machine) the INT8
# model is slower at the same accuracy (reports/cpu-reference). Where INT8 wins (ARM dot-product,
# VNNI, TensorRT), pass --model int8.
DEFAULT = "fp32"


def shipped_model(name: str = DEFAULT) -> Path:
    if name not in SHIPPED:
        raise ModelError(f"no shipped model named {name!r}; known: {', '.join(SHIPPED)}")
    path = Path(str(files("catdog.runtime") / "assets" / SHIPPED[name]))
    if not path.is_file():
        raise ModelError(f"no {name} model is shipped in this install; pass --model PATH")
    return path


def resolve_model(model: str | Path | None) -> Path:
    """None -> the default shipped model; an existing path -> itself; 'fp32'/'int8' -> shipped."""
    if model is None:
        return shipped_model()
    path = Path(model)
    if not path.exists() and str(model) in SHIPPED:
        return shipped_model(str(model))
    return path
