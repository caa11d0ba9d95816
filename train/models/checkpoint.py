"""Checkpoints are plain dicts of str/int/float/list/dict + tensors, so they load with
torch.load(weights_only=True): a checkpoint can never run code on the machine that opens it.

Keys: format, format_version, arch, arch_kwargs, classes, spec (PreprocessSpec dict), state_dict,
train_config, metrics, epoch, versions; best.pth adds temperature/calibration once calibrated, and
last.pth optimizer/scheduler/scaler/ema/run_state for --resume. load_checkpoint reads a file once
into a Checkpoint: the typed record every stage reads, never a dict read by string keys."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import platform
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from catdog.runtime.spine.errors import CheckpointError, MetadataError, error_line
from catdog.runtime.spine.fileio import atomic_path
from catdog.runtime.spine.spec import PreprocessSpec

FORMAT = "catdog-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("arch", "classes", "spec", "state_dict")
# What torch's weights_only unpickler says when a pickle names code (torch/_weights_only_unpickler.py)
_PICKLED_CODE = re.compile(r"GLOBAL|reduce for unrecognized function|Can only (create new object|build)")
MAX_TEMPERATURE = 1e3


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint file, read once by load_checkpoint and validated there. Fields other than
    path, sha256, classes, spec and temperature hold what the file stores, as stored."""

    path: Path  # as given; messages about the file name it so
    # Of the very bytes that were loaded: a second read could see a file replaced in between.
    sha256: str
    arch: str
    classes: tuple[str, ...]
    spec: PreprocessSpec
    state_dict: dict[str, Any]
    arch_kwargs: Any = None  # the builder's options; build_model checks they are a dict that fits
    # softmax(logits / T) is what the runtime scores; 1.0 until train's calibration fits one.
    temperature: float = 1.0
    calibration: dict[str, Any] | None = None  # how the temperature was fitted
    epoch: int | None = None
    metrics: dict[str, Any] | None = None
    train_config: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None
    # last.pth only: the training loop's state, for --resume
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    run_state: dict[str, Any] | None = None
    format_version: int = 0  # 0: a file from before the version was stamped
    versions: dict[str, str] | None = None
    # Keys this version does not name (a newer writer's), kept so that a re-save loses nothing.
    other: Mapping[str, Any] = field(default_factory=dict)

    def fields_to_save(self) -> dict[str, Any]:
        """What save_checkpoint takes to write this checkpoint again (format and versions are the
        writer's own); a field the file did not have stays out, as None."""
        skip = {"path", "sha256", "other", "format_version", "versions"}
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        out = {k: v for k, v in out.items() if v is not None}
        out["classes"] = list(self.classes)
        if self.temperature == 1.0 and self.calibration is None:
            del out["temperature"]  # uncalibrated: the file says nothing about T, and neither does its copy
        return {**self.other, **out}


_NAMED = {f.name for f in dataclasses.fields(Checkpoint)} - {"path", "sha256", "other"}


def versions() -> dict[str, str]:
    import torchvision

    # str(): torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def _plain(obj: Any) -> Any:
    """Subclasses of str/int/float (TorchVersion, numpy scalars' cousins, enums) -> the builtin type,
    so the file only holds what torch.load(weights_only=True) accepts."""
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj) if type(obj) in (list, tuple) else [_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, torch.Tensor):
        return obj
    for base in (str, int, float):
        if isinstance(obj, base) and type(obj) is not base:
            return base(obj)
    return obj


def save_checkpoint(path: str | Path, **fields: Any) -> Path:
    """Write a checkpoint atomically. `fields` must include REQUIRED; spec may be a PreprocessSpec."""
    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}")
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **fields}
    if isinstance(ckpt["spec"], PreprocessSpec):
        ckpt["spec"] = ckpt["spec"].to_dict()
    ckpt["classes"] = list(ckpt["classes"])
    ckpt = {k: (v if k == "state_dict" else _plain(v)) for k, v in ckpt.items()}
    buf = io.BytesIO()  # torch.save to a path fails with a C++ RuntimeError on a full disk;
    torch.save(ckpt, buf)  # a plain Python write raises ENOSPC, which atomic_path reports in one line
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint with weights_only=True; every failure is a CheckpointError.
    The file is read once: the same bytes are loaded and hashed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(4)
        if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (wrong file?); "
                                  "pass a best.pth / last.pth from catdog-train")
        data = head + f.read()
    return _record(path, hashlib.sha256(data).hexdigest(), _validated(path, _torch_load(path, data)))


def _validated(path: Path, ckpt: Any) -> dict[str, Any]:
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a catdog checkpoint (got {type(ckpt).__name__})")
    if ckpt.get("format") != FORMAT:
        bare = _looks_like_state_dict(ckpt)
        hint = " (looks like a bare state_dict: pass it to catdog-train --weights)" if bare else ""
        raise CheckpointError(f"{path}: not a catdog checkpoint{hint}")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer catdog-edge (format {ckpt['format_version']}); upgrade")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; it may be from an interrupted save")
    try:
        ckpt["spec"] = PreprocessSpec.from_dict(ckpt["spec"])
    except MetadataError as e:
        raise CheckpointError(f"{path}: {e}") from None
    ckpt["classes"] = tuple(str(c) for c in ckpt["classes"])
    ckpt["temperature"] = _temperature(ckpt.get("temperature"), path)
    return ckpt


def _temperature(t: Any, path: Path) -> float:
    """The temperature fitted on the validation split after training; 1.0 for older checkpoints."""
    if t is None:
        return 1.0
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < MAX_TEMPERATURE:
        raise CheckpointError(f"{path}: temperature must be a number in (0, 1000), got {t!r}; "
                              "re-run the calibration with catdog-train")
    return float(t)


def _record(path: Path, sha256: str, ckpt: dict[str, Any]) -> Checkpoint:
    named = {k: v for k, v in ckpt.items() if k in _NAMED}
    other = {k: v for k, v in ckpt.items() if k not in _NAMED and k != "format"}
    return Checkpoint(path=path, sha256=sha256, other=other, **named)


def _torch_load(path: Path, data: bytes) -> Any:
    """torch.load of the file's bytes with weights_only=True. Its unpickler refuses anything that
    is not data, and says why in one of two ways: a GLOBAL (a callable or class the pickle names,
    e.g. os.system) or a reduce/new-object/build of one is code; anything else (an opcode it does
    not know, a string running off the end) is bytes that are no pickle at all. Its warnings (e.g.
    "protocol 222" from random bytes) say nothing a user can act on: they are dropped, never printed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        if _PICKLED_CODE.search(str(e)):
            raise CheckpointError(
                f"{path}: refused: the file carries pickled code or objects (only plain tensors and "
                "dicts load safely); re-save it as a plain state_dict or catdog checkpoint"
            ) from None
        raise CheckpointError(f"{path}: not a checkpoint: corrupt, truncated or not a PyTorch file "
                              f"({type(e).__name__}); pass a best.pth / last.pth from catdog-train") from None


def _looks_like_state_dict(d: dict) -> bool:
    return bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())


def build_model(ckpt: Checkpoint, source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the eval-mode model a checkpoint describes; arch and class count are checked."""
    from catdog.train.models import get_model

    model = get_model(ckpt.arch, len(ckpt.classes), **_builder_kwargs(ckpt, source))
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not match arch {ckpt.arch!r} with {len(ckpt.classes)} "
                              f"classes ({error_line(e)})") from None
    return model.eval()


def _builder_kwargs(ckpt: Checkpoint, source: str) -> dict[str, Any]:
    """The checkpoint's arch_kwargs as the builder takes them. The class count is the classes list's
    (a num_classes kwarg that agrees is redundant, one that does not is a broken file), and the
    weights are the state_dict's: pretrained/weights would only load others first (from the network,
    or a path on the machine that trained)."""
    kwargs = ckpt.arch_kwargs or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{source}: arch_kwargs is a {type(kwargs).__name__}, not a dict of builder "
                              "options; the checkpoint is damaged: re-save it from catdog-train")
    n = len(ckpt.classes)
    if "num_classes" in kwargs and kwargs["num_classes"] != n:
        raise CheckpointError(f"{source}: arch_kwargs has num_classes={kwargs['num_classes']!r} but the checkpoint "
                              f"lists {n} classes {list(ckpt.classes)}; the two must agree: remove num_classes "
                              "from arch_kwargs (the classes list sets the count)")
    return {k: v for k, v in kwargs.items() if k not in ("num_classes", "pretrained", "weights")}
