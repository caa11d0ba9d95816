"""The models shipped inside the runtime package (runtime/assets/, package data): efficientnet_lite2
trained on dogs-vs-cats by scripts/reference-model.sh, in fp32 and two CPU INT8 formats. `--model
fp32|int8|int8-avx2|int8-vnni` picks one by name ("int8": the format for this CPU); without --model
the precision follows the provider that will run it."""

from __future__ import annotations

from pathlib import Path

from catdog.runtime.spine.artifacts import ARTIFACTS
from catdog.runtime.spine.errors import ModelError

# Two CPU INT8 formats (export/int8/quantize.py's INT8_FORMATS) of model.onnx: catdog-export's 7-bit
# weights, which no CPU's kernels can saturate, and scripts/requantize.py --int8-target vnni's full
# 8-bit weights, exact where VNNI adds in int32. On a VNNI CPU the latter made no error fp32 did not
# on either evaluation set, where the 7-bit one made one more on each (reports/int8-vnni).
SHIPPED = {"fp32": ARTIFACTS["onnx"].filename, "int8-avx2": ARTIFACTS["int8"].filename,
           "int8-vnni": "model.int8-vnni.onnx"}
NAMES = ("int8", *SHIPPED)  # what --model takes by name; "int8": the INT8 for this CPU
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


def int8_for_this_cpu(path: str | None = None) -> str:
    """The shipped INT8 for a CPU integer path (this CPU's by default): VNNI's where VPDPBUSD adds
    in int32, else the 7-bit one that no CPU's kernels can saturate."""
    from catdog.runtime.spine.isa import target_of

    return "int8-vnni" if target_of(path) == "vnni" else "int8-avx2"


def shipped_model(name: str) -> Path:
    if name == "int8":
        name = int8_for_this_cpu()
    if name not in SHIPPED:
        raise ModelError(f"no shipped model named {name!r}; known: {', '.join(NAMES)}")
    # Package data sits beside this module in every pip install (wheel, sdist, editable); a plain
    # path, because importlib.resources costs ~8 ms of a one-photo cold start.
    path = Path(__file__).parents[1] / "assets" / SHIPPED[name]  # runtime/assets, beside the rooms
    if not path.is_file():
        raise ModelError(f"no {name} model is shipped in this install; pass --model PATH")
    return path


def resolve_model(model: str | Path | None, provider: str = "auto") -> Path:
    """None -> the shipped model for `provider`; an existing path -> itself; a name in NAMES -> shipped."""
    if model is None:
        return shipped_model(default_name(provider))
    path = Path(model)
    if path.exists():
        return path
    if str(model) in NAMES:
        return shipped_model(str(model))
    if not path.suffix and len(path.parts) == 1:  # a bare word: most likely a mistyped name
        raise ModelError(f"{model}: no such model file, nor a shipped model name (known: {', '.join(NAMES)})")
    return path
