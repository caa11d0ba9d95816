"""Real ONNX models built with onnx.helper (no torch: these tests also run in the torch-free venv),
real photos, and real video files written by OpenCV from those photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catdog.runtime.metadata import METADATA_KEY, ModelMetadata
from catdog.runtime.spec import PreprocessSpec

SPEC = PreprocessSpec(size=32, resize=36, interpolation="bilinear")
PHOTOS = ["cat.168.jpg", "cat.193.jpg", "cat.379.jpg", "dog.169.jpg", "dog.319.jpg", "dog.381.jpg"]
HIDDEN = 4


def weights(classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv_w": rng.normal(0, 0.5, (HIDDEN, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, (HIDDEN,)).astype(np.float32),
        "fc_w": rng.normal(0, 1.0, (classes, HIDDEN)).astype(np.float32),
        "fc_b": rng.normal(0, 0.1, (classes,)).astype(np.float32),
    }


def reference_logits(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The same network in plain numpy: Conv3x3(pad 1) -> ReLU -> mean -> Gemm. x: (N,3,H,W) float."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # N,C,H,W,3,3
    conv = np.einsum("nchwij,kcij->nkhw", win, w["conv_w"]) + w["conv_b"][None, :, None, None]
    pooled = np.maximum(conv, 0).mean(axis=(2, 3))
    return pooled @ w["fc_w"].T + w["fc_b"]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


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


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "float": build_model(d / "tiny.onnx", metadata=meta()),
        "uint8": build_model(d / "tiny_baked.onnx", metadata=meta(input_format="uint8"), input_format="uint8"),
        "probs": build_model(d / "tiny_probs.onnx", metadata=meta(output="probs"), softmax_out=True),
        "softmax_nometa": build_model(d / "tiny_softmax_nometa.onnx", softmax_out=True),
        "nometa": build_model(d / "tiny_nometa.onnx"),
        "batch1": build_model(d / "tiny_batch1.onnx", metadata=meta(), batch=1),
    }


@pytest.fixture(scope="session")
def imagenet_model(tmp_path_factory) -> Path:
    """A 1000-class metadata-less model (a stand-in for a third-party ImageNet classifier) whose
    bias makes class 258 (Samoyed) win on any photo."""
    bias = np.zeros(1000, np.float32)
    bias[258] = 50.0
    return build_model(tmp_path_factory.mktemp("in") / "imagenet.onnx", classes=1000, size=48, fc_b=bias)


@pytest.fixture(scope="session")
def photos(data_dir) -> list[Path]:
    return [data_dir / p for p in PHOTOS]


def write_video(path: Path, photo_paths: list[Path], frames: int, fourcc: str = "MJPG", fps: float = 10.0,
                size: tuple[int, int] = (64, 48)) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert vw.isOpened(), f"OpenCV cannot write {fourcc} here"
    imgs = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in photo_paths]
    for i in range(frames):
        vw.write(imgs[i % len(imgs)])
    vw.release()
    return path


@pytest.fixture(scope="session")
def video_avi(tmp_path_factory, photos) -> Path:
    return write_video(tmp_path_factory.mktemp("vid") / "clip.avi", photos, 24)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (python -m catdog.runtime), as a user would run it."""
    return subprocess.run([sys.executable, "-m", "catdog.runtime", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)
