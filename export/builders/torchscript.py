"""TorchScript artifact: traced, then frozen with optimize_numerics=False so that freezing only
inlines weights and never changes the arithmetic (conv-bn folding would move logits by ~1e-6 and
the TorchScript gate is 1e-5). Metadata travels in _extra_files."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Iterator

import torch

from catdog.runtime.spine.metadata import METADATA_FILE, ModelMetadata


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch 2.14 marks torch.jit deprecated (FutureWarning); the issue asks for TorchScript and it
    still works. If it is removed, the export tests fail instead of this warning scrolling by."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        yield


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, meta: ModelMetadata, path: Path) -> None:
    with torch.no_grad(), _quiet():
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
        frozen = torch.jit.freeze(traced, optimize_numerics=False)
        buf = io.BytesIO()  # torch.jit.save to a path aborts the process (C++ terminate) on a full disk
        torch.jit.save(frozen, buf, _extra_files={METADATA_FILE: meta.to_json()})
    Path(path).write_bytes(buf.getbuffer())  # a Python write raises OSError instead


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, ModelMetadata | None]:
    extra = {METADATA_FILE: ""}
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    text = extra[METADATA_FILE]
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    meta = ModelMetadata.from_json(text, str(path)) if text else None
    return module.eval(), meta
