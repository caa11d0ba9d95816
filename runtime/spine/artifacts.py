"""The artifact table: what catdog-export writes into an export folder, as data. Export builds from
it (adding builders and gates), the benchmarks find artifacts by it, the runtime names its shipped
models from it. Rows are read by name, never by position."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtifactFile:
    name: str  # what export calls it (--gate int8.agreement, report rows)
    filename: str  # its file in an export folder
    kind: str  # "onnx" | "torchscript": what runs it
    precision: str  # "fp32" | "fp16" | "int8"
    input_format: str  # "float" (NCHW from preprocess) | "uint8" (NHWC crops, preprocessing baked in)
    row: str  # its row in benchmark reports, beside torch eager rows


ARTIFACTS: dict[str, ArtifactFile] = {
    a.name: a
    for a in (
        ArtifactFile("torchscript", "model.ts", "torchscript", "fp32", "float", "torchscript"),
        ArtifactFile("onnx", "model.onnx", "onnx", "fp32", "float", "onnx-fp32"),
        ArtifactFile("int8", "model.int8.onnx", "onnx", "int8", "float", "onnx-int8"),
        # Symmetric int8 QDQ (zero points 0): what TensorRT takes; catdog-export --int8-for tensorrt
        ArtifactFile("int8-trt", "model.int8-trt.onnx", "onnx", "int8", "float", "onnx-int8-trt"),
        ArtifactFile("fp16", "model.fp16.onnx", "onnx", "fp16", "float", "onnx-fp16"),
        ArtifactFile("baked", "model.baked.onnx", "onnx", "fp32", "uint8", "onnx-baked"),
    )
}


def by_filename(filename: str) -> ArtifactFile | None:
    """The row for a file name found in an export folder, or None for any other file."""
    return next((a for a in ARTIFACTS.values() if a.filename == filename), None)
