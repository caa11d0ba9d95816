"""How GPU rows are set up, checked on any machine: the GPU and TF32 are the same for torch CUDA,
ORT CUDA and TensorRT rows; TensorRT gets an engine per batch size; an INT8 model TensorRT cannot
take is a row marked n/a, not a row labelled "INT8 TensorRT" that is something else."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

from catdog.benchmarks.grid.artifacts import discover
from catdog.benchmarks.grid.measure import batch_sets
from catdog.benchmarks.grid.runners import GpuSettings, make_runner, session_options, torch_tf32, why_not
from catdog.runtime.engine.providers import provider_entry
from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec


def _int8_copy(tiny_export, tmp_path, name: str, extra: dict) -> object:
    model = onnx.load(str(tiny_export / "model.int8.onnx"))
    meta = ModelMetadata(classes=("cat", "dog"), spec=PreprocessSpec(size=32, resize=36), arch="tiny",
                         precision="int8", extra=extra)
    helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    onnx.save(model, str(tmp_path / name))
    (art,), _ = discover([tmp_path / name])
    return art


@pytest.mark.parametrize("tf32", [True, False])
def test_every_gpu_row_gets_one_tf32_setting_and_one_device(tiny_export, tf32):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch_tf32(tf32)  # what a torch CUDA row sets (torch's defaults differ: matmul off, convolutions on)
        assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    (art, *_), _ = discover([tiny_export / "model.onnx"])
    gpu = GpuSettings(device_id=2, tf32=tf32)
    kw = session_options(art, "cuda", gpu, (1, 8))
    assert kw == {"trt_fp16": False, "device_id": 2, "batches": (1, 8), "cuda_tf32": tf32}
    cuda = provider_entry("cuda", {}, kw["device_id"], kw["cuda_tf32"])[0][1]  # what ORT CUDA is given
    assert cuda["use_tf32"] == int(tf32) and cuda["device_id"] == 2
    runner = make_runner(art, "cpu", 1, gpu, (1, 8))  # the same settings leave a CPU row untouched
    assert runner.run(np.zeros((8, 3, 32, 32), np.float32)).shape == (8, 2)


def test_tensorrt_rows_get_an_engine_per_batch_size():
    assert batch_sets("tensorrt", (1, 8, 32)) == [(1,), (8,), (32,)]
    assert batch_sets("cuda", (1, 8, 32)) == [(1, 8, 32)] and batch_sets("cpu", (1, 32)) == [(1, 32)]


def test_int8_that_tensorrt_cannot_take_is_not_a_tensorrt_row(tiny_export, tmp_path):
    asym = _int8_copy(tiny_export, tmp_path, "asym.onnx", {"int8": {"for": "cpu", "symmetric": False}})
    sym = _int8_copy(tiny_export, tmp_path, "sym.onnx", {"int8": {"for": "tensorrt", "symmetric": True}})
    assert "asymmetric INT8" in why_not(asym, "tensorrt") and "--int8-for tensorrt" in why_not(asym, "tensorrt")
    assert why_not(asym, "cuda") is None and why_not(asym, "cpu") is None
    assert why_not(sym, "tensorrt") is None
    assert session_options(sym, "tensorrt", GpuSettings(), (4,))["trt_fp16"] is False
