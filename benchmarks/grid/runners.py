"""Runners: one artifact on one provider (one thread count, one GPU), ready to run a batch. ONNX
runners are the runtime's own sessions (catdog.runtime.engine.session.open_session: provider checks,
TensorRT options, engine cache); torch runners are what is left here. torch is imported only by
the torch paths, so everything else works without it.

GPU math is set alike on every GPU row: TF32 on or off for torch's matmuls and convolutions, ORT
CUDA's kernels and (on, its default, which onnxruntime exposes no switch for) TensorRT's fp32."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from catdog.benchmarks.grid.artifacts import Artifact, jit_load
from catdog.runtime.engine import session as rt_session
from catdog.runtime.engine.trt import int8_kind
from catdog.runtime.spine.errors import ProviderError

TORCH_DEVICES = {"cpu": "cpu", "cuda": "cuda"}  # provider -> where torch artifacts run (others: ONNX only)


@dataclass
class Runner:
    """A ready artifact: `run(x)` is one synchronous inference (GPU work finished on return)."""

    artifact: Artifact
    provider: str
    threads: int | None
    run: Callable[[Any], Any]
    create_s: float


@dataclass(frozen=True)
class GpuSettings:
    """Where and how GPU rows compute: the device, and TF32 for fp32 math (same for every row)."""

    device_id: int = 0
    tf32: bool = True


DEFAULT_GPU = GpuSettings()


def torch_tf32(enabled: bool) -> None:
    """torch's two TF32 switches (matmul: off by default, cuDNN convolutions: on) set alike."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def session_options(art: Artifact, provider: str, gpu: GpuSettings, batches: Sequence[int]) -> dict[str, Any]:
    """open_session's GPU arguments for one ONNX row. Each artifact runs at its own precision: an
    fp32 graph stays fp32 on TensorRT (no silent fp16); a symmetric INT8 graph gets TensorRT's
    INT8 from its own Q/DQ nodes (open_session reads them)."""
    return {"trt_fp16": provider == "tensorrt" and art.precision == "fp16", "device_id": gpu.device_id,
            "batches": tuple(batches), "cuda_tf32": gpu.tf32}


def _ort_runner(art: Artifact, provider: str, threads: int | None, gpu: GpuSettings,
                batches: Sequence[int]) -> Runner:
    sess = rt_session.open_session(art.path, provider, threads=threads, log=None, spinning=True,
                                   **session_options(art, provider, gpu, batches))
    return Runner(art, provider, threads, sess.run, sess.create_s)


def _torch_model(art: Artifact, device: str) -> Any:
    if art.kind == "torchscript":
        return jit_load(art.path, device)
    from catdog.train.models.checkpoint import build_model, load_checkpoint

    model = build_model(load_checkpoint(art.path), str(art.path)).to(device)
    if art.meta and art.meta.extra.get("tta"):
        from catdog.export.builders.tta import with_tta

        model = with_tta(model, True)
    return model


def _torch_runner(art: Artifact, provider: str, threads: int | None, gpu: GpuSettings) -> Runner:
    import torch

    device = TORCH_DEVICES.get(provider)
    if device is None:
        raise ProviderError(f"{art.name} is a torch artifact; provider {provider!r} runs ONNX only")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ProviderError(f"{art.name}: torch sees no CUDA GPU; install a CUDA build of torch")
        device = f"cuda:{gpu.device_id}"
        torch_tf32(gpu.tf32)
    t0 = time.perf_counter()
    model = _torch_model(art, device).eval()
    create_s = time.perf_counter() - t0
    sync = (lambda: torch.cuda.synchronize(device)) if device != "cpu" else (lambda: None)
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


def make_runner(art: Artifact, provider: str, threads: int | None, gpu: GpuSettings = DEFAULT_GPU,
                batches: Sequence[int] = (1,)) -> Runner:
    """`batches`: the batch sizes this runner will be fed (TensorRT builds its engine for them)."""
    if provider not in rt_session.PROVIDERS:
        raise ProviderError(f"unknown provider {provider!r}; known: {', '.join(rt_session.PROVIDERS)}")
    if art.kind == "onnx":
        return _ort_runner(art, provider, threads, gpu, batches)
    return _torch_runner(art, provider, threads, gpu)


def why_not(art: Artifact, provider: str) -> str | None:
    """Why this artifact does not run on this provider at all; None when it does (torch has no
    TensorRT provider here; AMP is a CUDA feature; TensorRT takes symmetric INT8 only)."""
    if art.kind == "onnx":
        if provider == "tensorrt" and int8_kind(art.meta) == "asymmetric":
            return ("asymmetric INT8 (uint8 activations): TensorRT takes symmetric int8 QDQ only "
                    "(catdog-export --int8-for tensorrt)")
        return None
    device = TORCH_DEVICES.get(provider)
    if device is None or (art.amp and device != "cuda"):
        return f"{art.name} does not run on {provider}"
    return None
