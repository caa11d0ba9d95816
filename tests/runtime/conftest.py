"""Runtime fixtures: real models (onnx.helper), real photos, real OpenCV videos. Helpers: tests/testkit/runtime.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from testkit.runtime import PHOTOS, build_model, meta, write_video


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


@pytest.fixture(scope="session")
def video_avi(tmp_path_factory, photos) -> Path:
    return write_video(tmp_path_factory.mktemp("vid") / "clip.avi", photos, 24)
