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
def _captured_stderr() -> Iterator[Path]:
    """On failure torch's C++ side dumps the whole IR graph to fd 2; keep it out of the user's
    terminal (it is in the file for --debug) and report one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.NamedTemporaryFile(prefix="catdog-onnx-export-", suffix=".log", delete=False) as log:
        os.dup2(log.fileno(), 2)
        try:
            yield Path(log.name)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def export_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Eager model -> ONNX ModelProto with input 'input' (N,3,S,S) and output 'logits' (N,C), N dynamic."""
    if opset < MIN_OPSET:
        raise ModelError(f"--opset {opset} is too old; use {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    buf = io.BytesIO()
    try:
        with _captured_stderr() as log, warnings.catch_warnings(), torch.no_grad():
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
            f"ONNX export failed at opset {opset}: {first} (exporter log: {log}); "
            "the arch or its input size is not exportable as is (another --opset may help)"
        ) from None
    Path(log).unlink(missing_ok=True)
    model_proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model_proto)
    return model_proto
