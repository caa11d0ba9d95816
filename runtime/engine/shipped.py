"""The models shipped inside the runtime package (runtime/assets/, package data): efficientnet_lite2
trained on dogs-vs-cats by scripts/reference-model.sh. `--model fp32|int8` picks one by name; without
--model the precision follows the provider that will run it."""

from __future__ import annotations

from pathlib import Path

from catdog.runtime.spine.artifacts import ARTIFACTS
from catdog.runtime.spine.errors import ModelError

SHIPPED = {"fp32": ARTIFACTS["onnx"].filename, "int8": ARTIFACTS["int8"].filename}
# On a CPU the INT8 model (U8S8 QDQ) is the faster one at about the same accuracy (README's table;
# reports/cpu-reference for the speed). GPU providers
# run QDQ INT8 no faster than fp32 (CUDA) or need their own calibration (TensorRT): fp32 there.
INT8_PROVIDERS = ("cpu", "openvino")
GPU_FIRST = ("tensorrt", "cuda")  # what provider "auto" takes before the CPU (session.open_session)


def default_name(provider: str = "auto") -> str:
    """The shipped precision for a provider choice: int8 where the CPU (or OpenVINO) runs it."""
    if provider == "auto":
        from catdog.runtime.engine.session import available_providers

        return "fp32" if set(GPU_FIRST) & set(available_providers()) else "int8"
    return "int8" if provider in INT8_PROVIDERS else "fp32"


def shipped_model(name: str) -> Path:
    if name not in SHIPPED:
        raise ModelError(f"no shipped model named {name!r}; known: {', '.join(SHIPPED)}")
    # Package data sits beside this module in every pip install (wheel, sdist, editable); a plain
    # path, because importlib.resources costs ~8 ms of a one-photo cold start.
    path = Path(__file__).parents[1] / "assets" / SHIPPED[name]  # runtime/assets, beside the rooms
    if not path.is_file():
        raise ModelError(f"no {name} model is shipped in this install; pass --model PATH")
    return path


def resolve_model(model: str | Path | None, provider: str = "auto") -> Path:
    """None -> the shipped model for `provider`; an existing path -> itself; 'fp32'/'int8' -> shipped."""
    if model is None:
        return shipped_model(default_name(provider))
    path = Path(model)
    if not path.exists() and str(model) in SHIPPED:
        return shipped_model(str(model))
    return path
