"""Runners: one artifact on one provider with one thread count, ready to run a batch.

Providers are a table looked up by name. Asking for one that this onnxruntime lacks is an error,
never a silent skip; a session whose first provider is not the one asked for (onnxruntime falls
back to CPU when CUDA libraries are missing) is an error too. torch is imported only by the torch
runners, so everything else works without it."""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from catdog.runtime.errors import ModelError, ProviderError

from catdog.benchmarks.artifacts import Artifact


@dataclass(frozen=True)
class Provider:
    name: str
    ort: str  # onnxruntime execution provider
    torch_device: str | None  # where torch artifacts run for this provider; None: not applicable
    uses_threads: bool  # CPU thread count matters (GPU providers: one entry, threads=None)


PROVIDERS = {
    "cpu": Provider("cpu", "CPUExecutionProvider", "cpu", True),
    "cuda": Provider("cuda", "CUDAExecutionProvider", "cuda", False),
    "tensorrt": Provider("tensorrt", "TensorrtExecutionProvider", None, False),
}


def available_providers() -> list[str]:
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [name for name, p in PROVIDERS.items() if p.ort in have]


def ort_has(provider: str) -> bool:
    import onnxruntime as ort

    return PROVIDERS[provider].ort in ort.get_available_providers()


def torch_cuda() -> bool:
    """torch is installed and sees a CUDA GPU (imports torch only when it is installed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_providers(requested: list[str] | None, torch_ok: bool = False) -> list[str]:
    """None/'all' -> every available provider; otherwise each must exist and be available.
    With `torch_ok`, "cuda" is also available when only torch sees a GPU (an onnxruntime without
    CUDA): torch artifacts then run on it and the ONNX rows say their ORT-GPU figure is missing."""
    have = available_providers()
    if torch_ok and "cuda" not in have and torch_cuda():
        have.insert(1, "cuda")
    if not requested or requested == ["all"]:
        return have
    for name in requested:
        if name not in PROVIDERS:
            raise ProviderError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
        if name not in have:
            hint = "install onnxruntime-gpu (JetPack's wheel on a Jetson) with matching CUDA/cuDNN" + (
                " and TensorRT libraries" if name == "tensorrt" else "")
            raise ProviderError(f"provider {name!r} is not available in this onnxruntime (available: {', '.join(have)}); {hint}")
    return list(dict.fromkeys(requested))


def ort_provider_list(provider: str, precision: str = "fp32", cache_dir: Path | None = None) -> list[Any]:
    """The onnxruntime providers argument for one of our provider names, with real-use options."""
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE",
                                      "arena_extend_strategy": "kSameAsRequested"})
    if provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    if provider == "tensorrt":
        cache = cache_dir or Path(tempfile.gettempdir()) / "catdog-trt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        trt = ("TensorrtExecutionProvider", {
            "device_id": 0,
            # Each artifact runs at its own precision: an fp32 graph stays fp32 (no silent fp16).
            "trt_fp16_enable": precision == "fp16",
            "trt_int8_enable": precision == "int8",  # QDQ graphs carry their own scales
            "trt_engine_cache_enable": True,  # engine builds take minutes on a Jetson; build once
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
        })
        return [trt, cuda, "CPUExecutionProvider"]
    raise ProviderError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")


@dataclass
class Runner:
    """A ready artifact: `run(x)` is one synchronous inference (GPU work finished on return)."""

    artifact: Artifact
    provider: str
    threads: int | None
    run: Callable[[Any], Any]
    create_s: float


def _ort_runner(art: Artifact, provider: str, threads: int | None) -> Runner:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "1")
    precision = art.meta.precision if art.meta else "fp32"
    t0 = time.perf_counter()
    try:
        sess = ort.InferenceSession(str(art.path), so, providers=ort_provider_list(provider, precision))
    except Exception as e:
        raise ModelError(f"{art.path}: cannot create a {provider} session ({str(e).strip().splitlines()[0][:200]})") from None
    create_s = time.perf_counter() - t0
    want = PROVIDERS[provider].ort
    got = sess.get_providers()
    if not got or got[0] != want:
        raise ProviderError(f"{art.name}: asked for {want} but onnxruntime gave {got}; check the GPU libraries (catdog-bench doctor)")
    name = art.input_name or sess.get_inputs()[0].name

    def run(x: Any) -> Any:
        return sess.run(None, {name: x})[0]

    return Runner(art, provider, threads, run, create_s)


def _torch_runner(art: Artifact, provider: str, threads: int | None) -> Runner:
    import torch

    device = PROVIDERS[provider].torch_device
    if device is None:
        raise ProviderError(f"{art.name} is a torch artifact; provider {provider!r} runs ONNX only")
    if device == "cuda" and not torch.cuda.is_available():
        raise ProviderError(f"{art.name}: torch sees no CUDA GPU; install a CUDA build of torch")
    t0 = time.perf_counter()
    if art.kind == "torchscript":
        with warnings.catch_warnings():  # torch 2.x deprecation notice on every load
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(art.path), map_location=device)
    else:
        from catdog.train.checkpoint import build_model, load_checkpoint

        model = build_model(load_checkpoint(art.path), str(art.path)).to(device)
    model.eval()
    create_s = time.perf_counter() - t0
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    amp = torch.autocast("cuda", dtype=torch.float16, enabled=art.amp)

    def run(x: Any) -> Any:
        if threads:  # torch's pool is process-wide; set it per call so interleaving stays fair
            torch.set_num_threads(threads)
        with torch.inference_mode(), amp:
            t = torch.from_numpy(x).to(device, non_blocking=True)
            y = model(t).float().cpu().numpy()
        sync()
        return y

    return Runner(art, provider, threads, run, create_s)


def make_runner(art: Artifact, provider: str, threads: int | None) -> Runner:
    if provider not in PROVIDERS:
        raise ProviderError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return _ort_runner(art, provider, threads) if art.kind == "onnx" else _torch_runner(art, provider, threads)


def applies(art: Artifact, provider: str) -> bool:
    """Whether this artifact runs on this provider at all (torch has no TensorRT provider here;
    AMP is a CUDA feature)."""
    if art.kind == "onnx":
        return True
    device = PROVIDERS[provider].torch_device
    return device is not None and (not art.amp or device == "cuda")
