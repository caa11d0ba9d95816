"""The spine's ModelMetadata, built once from the checkpoint record and stamped into every
artifact. Only precision and input_format differ between artifacts; every other field is
identical, the checkpoint's temperature (the runtime's scores are softmax(logits / T)) included."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from catdog.runtime.spine.errors import MetadataError
from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata, from_metadata_map

if TYPE_CHECKING:  # a hint only: reading an artifact's metadata needs no torch
    from catdog.train.models.checkpoint import Checkpoint


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def export_versions() -> dict[str, str]:
    import onnxruntime
    import torch

    return {
        "catdog-edge": _package_version("catdog-edge"),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def _json_scalars(metrics: Any) -> dict[str, Any] | None:
    """The checkpoint's metrics, kept to JSON-safe scalars (tensors or nested objects are dropped)."""
    if not isinstance(metrics, dict):
        return None
    keep = {str(k): v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    return keep or None


def _json_plain(obj: Any) -> Any:
    """Nested dicts/lists of JSON scalars; anything else as its text (the calibration record is
    plain data by construction; this keeps an odd checkpoint from breaking the metadata)."""
    if isinstance(obj, dict):
        return {str(k): _json_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_plain(v) for v in obj]
    return obj if obj is None or isinstance(obj, (int, float, str, bool)) else str(obj)


def base_metadata(ckpt: Checkpoint, opset: int, tta: str | None = None) -> ModelMetadata:
    """fp32 / float-input metadata for a checkpoint; artifacts derive theirs with .with_()."""
    extra: dict[str, Any] = {"opset": opset, "epoch": ckpt.epoch}
    if isinstance(ckpt.calibration, dict):
        extra["calibration"] = _json_plain(ckpt.calibration)
    if tta:
        extra["tta"] = tta
    return ModelMetadata(
        classes=ckpt.classes,
        spec=ckpt.spec,
        arch=str(ckpt.arch),
        checkpoint_sha256=ckpt.sha256,
        accuracy=_json_scalars(ckpt.metrics),
        temperature=ckpt.temperature,  # validated when the checkpoint was read
        versions=export_versions(),
        extra=extra,
    )


def set_onnx_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """Replace (never duplicate) our key in metadata_props; other keys are kept."""
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    return model


def read_onnx_metadata(path: str | Path) -> ModelMetadata:
    """Metadata of an ONNX file on disk (graph not loaded: load_external_data off)."""
    model = onnx.load(str(path), load_external_data=False)
    meta = from_metadata_map({p.key: p.value for p in model.metadata_props}, str(path))
    if meta is None:
        raise MetadataError(f"{path}: no catdog metadata ({METADATA_KEY!r}); re-export it with catdog-export")
    return meta
