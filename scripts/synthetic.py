"""Inputs made from nothing but numpy, onnx.helper and OpenCV, for scripts/bad_inputs.py and the
tests (tests/testkit/runtime.py re-exports them): a tiny real ONNX classifier in every broken or
odd form a user can hand the runtime (no metadata, a newer schema, another input rank, uint8
input, softmax output), a video written from photos, and crafted image bytes (a PNG whose header
claims 30000x30000 pixels, a JPEG with an EXIF orientation). They live in scripts/, not in tests/,
because scripts never import the tests (the tests reach scripts/ through tests/conftest.py),
nor in the product, which ships only what a user runs.

The classifier is the runtime tests' network (Conv3x3 -> ReLU -> mean -> Gemm; the tests keep a
numpy reference of it), not doctor's probe (tiny_classifier): the tests' expected numbers and
bad_inputs.py's printed scores depend on these exact weights."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec

SPEC = PreprocessSpec(size=32, resize=36, interpolation="bilinear")
HIDDEN = 4


def weights(classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv_w": rng.normal(0, 0.5, (HIDDEN, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, (HIDDEN,)).astype(np.float32),
        "fc_w": rng.normal(0, 1.0, (classes, HIDDEN)).astype(np.float32),
        "fc_b": rng.normal(0, 0.1, (classes,)).astype(np.float32),
    }


def build_model(path: Path, *, classes: int = 2, metadata: ModelMetadata | dict | None = None,
                input_format: str = "float", size: int | str = 32, softmax_out: bool = False,
                batch: int | str = "N", rank2: bool = False, seed: int = 0,
                spec: PreprocessSpec = SPEC, fc_b: np.ndarray | None = None) -> Path:
    """A tiny real classifier. uint8: NHWC uint8 input with the normalisation baked into the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = weights(classes, seed)
    if fc_b is not None:
        w["fc_b"] = fc_b.astype(np.float32)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = []
    if rank2:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3 * 32 * 32])
        nodes.append(helper.make_node("Reshape", ["input", "shape4"], ["x"]))
        inits.append(numpy_helper.from_array(np.array([-1, 3, 32, 32], np.int64), "shape4"))
    elif input_format == "uint8":
        inp = helper.make_tensor_value_info("input", TensorProto.UINT8, [batch, size, size, 3])
        std = np.asarray(spec.std, np.float32)
        inits += [numpy_helper.from_array((np.float32(spec.scale) / std).reshape(1, 1, 1, 3), "a"),
                  numpy_helper.from_array((np.asarray(spec.mean, np.float32) / std).reshape(1, 1, 1, 3), "b")]
        nodes += [helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["xf", "a"], ["xa"]),
                  helper.make_node("Sub", ["xa", "b"], ["xn"]),
                  helper.make_node("Transpose", ["xn"], ["x"], perm=[0, 3, 1, 2])]
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
        nodes.append(helper.make_node("Identity", ["input"], ["x"]))
    nodes += [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    out_name = "logits"
    if softmax_out:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out_name = "probs"
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, classes])
    graph = helper.make_graph(nodes, "tiny", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        text = metadata.to_json() if isinstance(metadata, ModelMetadata) else json.dumps(metadata)
        helper.set_model_props(model, {METADATA_KEY: text})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def meta(classes=("cat", "dog"), **kw) -> ModelMetadata:
    return ModelMetadata(classes=tuple(classes), spec=kw.pop("spec", SPEC), arch="tiny", **kw)


def write_video(path: Path, photo_paths: list[Path], frames: int, fourcc: str = "MJPG", fps: float = 10.0,
                size: tuple[int, int] = (64, 48)) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not vw.isOpened():  # not an assert: scripts run this too, and -O must not hide it
        raise RuntimeError(f"OpenCV cannot write {fourcc} here")
    imgs = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in photo_paths]
    for i in range(frames):
        vw.write(imgs[i % len(imgs)])
    vw.release()
    return path


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding only the Orientation tag (0x0112) after SOI."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def png_header_bomb() -> bytes:
    """A PNG whose header claims 30000x30000 RGB pixels (2.7 GB decoded) and holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + crc + b"\0" * 64
