"""fp32 ONNX export. torch 2.14's default (dynamo) exporter needs onnxscript, which this project
does not depend on; the TorchScript-based exporter works for every registered arch, so it is asked
for explicitly (dynamo=False). If a future torch drops it, the export tests fail loudly rather
than this module silently switching exporters."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import onnx
import torch

from catdog.export.options import ExportOptions
from catdog.runtime.spine.errors import ModelError, error_line

DEFAULT_OPSET = ExportOptions.opset
MIN_OPSET = 13  # per-channel QDQ (axis attribute on QuantizeLinear) needs 13
INPUT_NAME, OUTPUT_NAME = "input", "logits"
EXPORTER = "torch.onnx TorchScript-based (dynamo=False)"


@contextlib.contextmanager
def _captured_output() -> Iterator[Path]:
    """On failure torch's C++ side dumps the whole IR graph (on fd 1, its warnings on fd 2); keep both
    out of the user's terminal (they are in the file for --debug) and report one line instead. A log
    that stays empty is removed on the way out: only one worth reading is left (and named)."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = tempfile.NamedTemporaryFile(prefix="catdog-onnx-export-", suffix=".log", delete=False)
    path = Path(log.name)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        for fd in saved:
            os.dup2(log.fileno(), fd)
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_stdio()  # what C++ left in its buffers belongs in the log, not on the terminal
        for fd, orig in saved.items():
            os.dup2(orig, fd)
            os.close(orig)
        log.close()
        if path.stat().st_size == 0:
            path.unlink(missing_ok=True)


def _flush_c_stdio() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask (not on Linux or macOS): nothing buffered there
        pass


def _log_note(log: Path) -> str:
    return f" (exporter log: {log})" if log.exists() else ""


def export_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Eager model -> ONNX ModelProto with input 'input' (N,3,S,S) and output 'logits' (N,C), N dynamic."""
    if opset < MIN_OPSET:
        raise ModelError(f"--opset {opset} is too old; use {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    buf = io.BytesIO()
    try:
        with _captured_output() as log, warnings.catch_warnings(), torch.no_grad():
            # The deprecation notice of the TorchScript-based exporter is known (see module doc).
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(
                model.eval(),
                (example,),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
    except Exception as e:  # the exporter raises many types; the user needs the op and the opset
        first = error_line(e).split("Please feel free to request support")[0].strip()
        raise ModelError(
            f"ONNX export failed at opset {opset}: {first}{_log_note(log)}; "
            "the arch or its input size is not exportable as is (another --opset may help)"
        ) from None
    Path(log).unlink(missing_ok=True)
    model_proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model_proto)
    return model_proto
