"""The GPU half's decisions, tested on any machine: what TensorRT is given (profile, caches, INT8),
when `auto` skips it, and the proof that the provider asked for ran the graph. Real ONNX sessions,
real dlopen, real onnxruntime profiles; only the CUDA kernels themselves need a GPU (gpu-check.sh)."""

from __future__ import annotations

import ctypes.util
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from testkit.runtime import build_model, meta

from catdog.runtime.engine import trt as trtlib
from catdog.runtime.engine.providers import (
    _fallback_banner,
    check_ran,
    create_session,
    cuda_options,
    kernels_by_provider,
    profiled,
    provider_entry,
    warm_and_verify,
)
from catdog.runtime.engine.session import Request, _trt_setup, _try_provider, open_session, warmup_shape
from catdog.runtime.spine.errors import ProviderError
from catdog.runtime.spine.fileio import file_sha256

MISSING = ("libcatdog-no-such-nvinfer.so.10",)
SYMMETRIC = {"int8": {"for": "tensorrt", "activations": "int8", "symmetric": True}}
ASYMMETRIC = {"int8": {"for": "cpu", "activations": "uint8", "symmetric": False}}


def _request(path: Path, batches=(1, 16)) -> tuple[Request, list[str]]:
    lines: list[str] = []
    return Request(path, ort.SessionOptions(), 0, tuple(batches), None, lines.append), lines


def test_trt_versions_read_from_the_library():
    assert trtlib.trt_version_text(100300) == "10.3.0" and trtlib.trt_version_text(101201) == "10.12.1"
    assert trtlib.trt_version_text(8601) == "8.6.1" and trtlib.trt_version_text(8510) == "8.5.10"


def test_dlopen_takes_the_first_loadable_library_and_names_all_tried():
    libm = ctypes.util.find_library("m") or "libm.so.6"
    name, handle = trtlib.dlopen_first([MISSING[0], libm])
    assert name == libm and handle is not None
    with pytest.raises(ProviderError, match=r"cannot be loaded \(tried libcatdog-no-such-nvinfer\.so\.10: .*"
                                            r"install TensorRT"):
        trtlib.dlopen_first(MISSING)


def test_auto_skips_tensorrt_in_one_line_when_its_library_cannot_load(models, tmp_path):
    req, lines = _request(models["float"])
    t0 = time.perf_counter()
    assert _trt_setup(req, False, False, False, tmp_path / "cache", MISSING) is None
    assert time.perf_counter() - t0 < 0.5  # no model hash, no nvidia-smi, no session
    assert len(lines) == 1 and lines[0].startswith("auto: skipping TensorRT: TensorRT's library cannot be loaded")
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ProviderError, match="provider tensorrt: TensorRT's library cannot be loaded"):
        _trt_setup(req, True, False, False, tmp_path / "cache", MISSING)


def test_tensorrt_options_carry_the_runs_profile_and_keyed_caches(models, tmp_path, monkeypatch):
    # libm stands in for libnvinfer (it loads; it has no version symbol): everything after the
    # library check is real: the model is read, the profile, cache key and folders made.
    monkeypatch.chdir(tmp_path)
    libm = (ctypes.util.find_library("m") or "libm.so.6",)
    req, lines = _request(models["float"], batches=(1, 16))
    opts = _trt_setup(req, True, False, False, Path("rel-cache"), libm)
    assert opts["trt_profile_min_shapes"] == "input:1x3x32x32"
    assert opts["trt_profile_opt_shapes"] == opts["trt_profile_max_shapes"] == "input:16x3x32x32"
    key = trtlib.engine_key(file_sha256(models["float"]), "unknown", trtlib.gpu_name(0), "fp32", "b1-16-16")
    assert opts["trt_engine_cache_path"] == str((tmp_path / "rel-cache" / key).resolve())
    assert Path(opts["trt_timing_cache_path"]).is_absolute() and Path(opts["trt_timing_cache_path"]).is_dir()
    assert opts["trt_int8_enable"] is False and opts["device_id"] == 0
    assert len(lines) == 1 and "building a TensorRT engine" in lines[0] and "b1-16-16" in lines[0]
    fixed = build_model(tmp_path / "b1.onnx", metadata=meta(), batch=1)  # a fixed batch needs no profile
    opts = _trt_setup(_request(fixed)[0], True, True, False, tmp_path / "c", libm)
    assert "trt_profile_min_shapes" not in opts and opts["trt_engine_cache_path"].endswith("-fp16-static")


def test_tensorrt_int8_takes_only_symmetric_qdq(tmp_path):
    libm = (ctypes.util.find_library("m") or "libm.so.6",)
    sym = build_model(tmp_path / "sym.onnx", metadata=meta(precision="int8", extra=SYMMETRIC))
    asym = build_model(tmp_path / "asym.onnx", metadata=meta(precision="int8", extra=ASYMMETRIC))
    fp32 = build_model(tmp_path / "fp32.onnx", metadata=meta())
    bare = build_model(tmp_path / "bare.onnx")
    opts = _trt_setup(_request(sym)[0], True, False, False, tmp_path / "c", libm)
    assert opts["trt_int8_enable"] is True and "-int8-b1-16-16" in opts["trt_engine_cache_path"]  # Q/DQ need it
    for path, why in ((fp32, "is fp32, not a quantized model"), (asym, "is asymmetric INT8"),
                      (bare, "has no catdog metadata")):
        with pytest.raises(ProviderError, match=f"--trt-int8: {path.name} {why}.*catdog-export --int8-for tensorrt"):
            _trt_setup(_request(path)[0], True, False, True, tmp_path / "c", libm)
    req, lines = _request(asym)
    assert _trt_setup(req, False, False, False, tmp_path / "c", libm) is None  # auto: CUDA runs it instead
    assert len(lines) == 1 and "asymmetric INT8" in lines[0]
    with pytest.raises(ProviderError, match="provider tensorrt: asym.onnx is asymmetric INT8"):
        _trt_setup(_request(asym)[0], True, False, False, tmp_path / "c", libm)


def test_profile_and_key_pure_parts():
    p = trtlib.TrtProfile.for_batches([8, 1, 32])
    assert (p.min_batch, p.opt_batch, p.max_batch, p.slug) == (1, 32, 32, "b1-32-32")
    assert trtlib.profile_options("x", (4, 3, 8, 8), p) == {}  # static batch
    with pytest.raises(ProviderError, match="cannot be written"):
        trtlib.profile_options("a:b", ("N", 3, 8, 8), p)
    with pytest.raises(ValueError):
        trtlib.TrtProfile.for_batches([0, 4])
    base = ("0123456789abcdef" * 4, "10.3.0", "NVIDIA H100", "fp16", "b1-16-16")
    keys = {trtlib.engine_key(*base)}
    for i, other in enumerate(("f" * 64, "10.4.0", "Orin", "fp32", "b1-32-32")):
        keys.add(trtlib.engine_key(*base[:i], other, *base[i + 1:]))
    assert len(keys) == 6  # any of the five changes the folder
    assert trtlib.timing_key("10.3.0", "NVIDIA H100") == "timing-trt10.3.0-NVIDIA-H100"
    assert warmup_shape(["N", 3, "h", "w"], "tensor(float)", 224, 16) == (16, 3, 224, 224)
    assert warmup_shape(["N", 64, 64, "c"], "tensor(uint8)", 64, 4) == (4, 64, 64, 3)


def test_device_ids_follow_cuda_visible_devices():
    assert trtlib.smi_selector(1, None) == "1" and trtlib.smi_selector(1, "") == "1"
    assert trtlib.smi_selector(1, "3,5") == "5" and trtlib.smi_selector(0, "GPU-8f2e") == "GPU-8f2e"
    with pytest.raises(ProviderError, match="--device-id 2: CUDA_VISIBLE_DEVICES=0,1 makes only 2"):
        trtlib.smi_selector(2, "0,1")
    entry = provider_entry("tensorrt", {"trt_fp16_enable": True}, 3, tf32=False)
    assert entry[0][1]["device_id"] == 3 and entry[1] == ("CUDAExecutionProvider", cuda_options(3, False))
    assert cuda_options(3, False)["use_tf32"] == 0 and "use_tf32" not in cuda_options(0)


def test_explicit_sessions_never_fall_back(models):
    sess = open_session(models["float"], provider="cpu", log=None)
    assert sess.ort._enable_fallback is False  # a failing run raises instead of printing and moving on
    banner = ("*************** EP Error ***************\nEP Error [ONNXRuntimeError] : 11 : EP_FAIL : TensorRT EP "
              "could not build engine when using ['TensorrtExecutionProvider']\nFalling back to ['CPUExecutionProvider'"
              "] and retrying.\n****************************************")
    assert _fallback_banner(banner).startswith("EP Error [ONNXRuntimeError] : 11 : EP_FAIL : TensorRT EP")
    assert _fallback_banner("") is None


def test_the_warm_up_proves_which_provider_ran(models):
    opts = ort.SessionOptions()
    with profiled(opts) as folder:
        sess = create_session(models["float"], "cpu", opts, ["CPUExecutionProvider"])
        x = np.full((4, 3, 32, 32), 0.5, np.float32)
        out, note = warm_and_verify(sess, "cpu", x)
        assert out.shape == (4, 2) and note is None
        assert list(folder.iterdir())  # the profile went to the private folder, not the cwd
    assert opts.enable_profiling is False
    t0 = time.perf_counter()
    sess.run(None, {"input": x})  # profiling stopped after the warm-up: nothing more is written
    assert time.perf_counter() - t0 < 1.0
    with profiled(opts):
        sess = create_session(models["float"], "cpu", opts, ["CPUExecutionProvider"])
        # a session labelled tensorrt whose graph ran on the CPU is caught, not reported as TensorRT
        with pytest.raises(ProviderError, match="provider tensorrt loaded but ran none of the model's nodes "
                                                r"in the warm-up \(ran: CPUExecutionProvider \d+\)"):
            warm_and_verify(sess, "tensorrt", x)


def test_a_verified_session_is_proved_by_its_own_warm_up(models, tmp_path, monkeypatch):
    """The whole path a GPU session takes (profiled creation, warm-up at the run's batch, proof from
    the profile, profiling off), here with verify on for the CPU provider."""
    monkeypatch.chdir(tmp_path)
    req, lines = _request(models["float"], batches=(1, 8))
    sess = _try_provider(req, "cpu", {}, verify=True)
    assert sess.warmup_output_shape == (8, 2) and lines == []  # warmed up at the run's largest batch
    assert sess.ort._enable_fallback is False and req.opts.enable_profiling is False
    assert sess.run(np.zeros((3, 3, 32, 32), np.float32)).shape == (3, 2)
    assert list(tmp_path.iterdir()) == []  # the profile lived in a private folder, now gone


def test_partition_notes_and_profile_parsing():
    trt = {"provider": "TensorrtExecutionProvider"}
    events = [{"cat": "Node", "name": "TRTKernel_graph_0_kernel_time", "args": trt},
              {"cat": "Node", "name": "Gather_fence_before", "args": {"provider": "CPUExecutionProvider"}},
              {"cat": "Node", "name": "Gather_kernel_time", "args": {"provider": "CUDAExecutionProvider"}},
              {"cat": "Node", "name": "Memcpy_kernel_time", "args": {"provider": "CUDAExecutionProvider",
                                                                     "op_name": "MemcpyFromHost"}},
              {"cat": "Session", "name": "model_run"}]
    ran = kernels_by_provider(events)
    assert ran == Counter({"TensorrtExecutionProvider": 1, "CUDAExecutionProvider": 1})
    assert check_ran("tensorrt", ran) == "tensorrt runs 1 of 2 node kernels; the rest: CUDA 1"
    assert check_ran("cuda", Counter({"CUDAExecutionProvider": 5})) is None


def test_trt_flags_on_another_provider_are_refused(models):
    with pytest.raises(ProviderError, match="--trt-fp16 / --trt-int8 apply to TensorRT; --provider cpu"):
        open_session(models["float"], provider="cpu", trt_int8=True, log=None)
