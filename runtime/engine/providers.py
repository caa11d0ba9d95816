"""Execution providers, and proof of which one ran. onnxruntime's Python layer falls back on its
own: an InferenceSession that fails to build with TensorRT/CUDA, or a run that fails in one, prints
a banner to stdout (corrupting --json) and carries on with CUDA/CPU while we would still call the
session "tensorrt". So sessions are built with fallback off (and any banner an older onnxruntime
prints anyway is caught and turned into an error), and the warm-up of a GPU provider is profiled:
the provider asked for must have run graph nodes, or it is an error."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from catdog.runtime.spine.errors import ModelError, ProviderError, error_line

# Short name -> ONNX Runtime provider, and what to install when it is missing.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}
INSTALL_HINTS = {
    "cpu": "pip install onnxruntime",
    "cuda": "pip install onnxruntime-gpu (instead of onnxruntime) with CUDA 12 and cuDNN 9 libraries; "
    "on a Jetson use the JetPack onnxruntime-gpu wheel",
    "tensorrt": "pip install onnxruntime-gpu and tensorrt-cu12 (TensorRT libraries on the library path); "
    "on a Jetson use the JetPack onnxruntime-gpu wheel",
    "openvino": "pip install onnxruntime-openvino",
    "coreml": "onnxruntime on macOS (CoreML ships with the macOS wheel)",
    "dml": "pip install onnxruntime-directml (Windows)",
    "rocm": "install the ROCm build of onnxruntime",
}


def available_providers() -> list[str]:
    """Short names of the providers this onnxruntime build offers (unknown ones by ORT name)."""
    import onnxruntime as ort

    by_ort = {v: k for k, v in PROVIDERS.items()}
    return [by_ort.get(p, p) for p in ort.get_available_providers()]


def cuda_options(device_id: int, tf32: bool | None = None) -> dict[str, Any]:
    """CUDA provider options. Exhaustive cuDNN search costs the first run only; arena growth by
    request keeps memory near what the model needs (a Jetson shares it with the CPU). `tf32`:
    None keeps onnxruntime's default; the benchmarks set it so that torch and ORT rows agree."""
    opts: dict[str, Any] = {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE",
                            "arena_extend_strategy": "kSameAsRequested"}
    if tf32 is not None:
        opts["use_tf32"] = int(tf32)
    return opts


def provider_entry(name: str, trt: dict[str, Any], device_id: int, tf32: bool | None = None) -> list[Any]:
    """The providers list for one request. TensorRT hands nodes it cannot take to CUDA, then CPU:
    that is a partition, reported after the warm-up, not a fallback."""
    ort_name = PROVIDERS.get(name, name)
    cuda = ("CUDAExecutionProvider", cuda_options(device_id, tf32))
    if name == "tensorrt":
        return [(ort_name, {**trt, "device_id": device_id}), cuda, "CPUExecutionProvider"]
    if name == "cuda":
        return [cuda, "CPUExecutionProvider"]
    if name == "cpu":
        return [ort_name]
    return [ort_name, "CPUExecutionProvider"]


def warmup_shape(shape: Sequence[Any], input_type: str, size: int, batch: int) -> tuple[int, ...]:
    """The input shape a run feeds: dynamic dims filled (batch, the model's image size, 3 channels)."""
    hint = [d if isinstance(d, int) and d > 0 else (batch if i == 0 else size) for i, d in enumerate(shape)]
    if len(hint) == 4 and input_type == "tensor(uint8)" and not isinstance(shape[3], int):
        hint[3] = 3  # NHWC uint8 with a dynamic channel dim
    if len(hint) == 4 and input_type != "tensor(uint8)" and not isinstance(shape[1], int):
        hint[1] = 3
    return tuple(hint)


def _fallback_banner(text: str) -> str | None:
    """onnxruntime's fallback banner (printed to stdout) -> its error line, or None."""
    lines = [ln.replace("*", "").strip() for ln in text.splitlines() if "EP Error" in ln]
    detail = [ln for ln in lines if ln != "EP Error"]  # not the banner's "*** EP Error ***" frame
    found = detail or lines
    return found[0] if found else None


def create_session(path: Path, name: str, opts: Any, providers: list[Any]) -> Any:
    """An InferenceSession with onnxruntime's silent fallback off. Raises ModelError for a file no
    provider could load, ProviderError when the provider failed and onnxruntime fell back."""
    import onnxruntime as ort

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):  # an older onnxruntime ignores enable_fallback=0 and prints
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers, enable_fallback=0)
    except Exception as e:  # ORT raises its own pybind classes; all mean "this file cannot load"
        msg = error_line(e)
        if "protobuf" in msg.lower() or "parsing" in msg.lower():
            raise ModelError(f"{path}: not a valid ONNX model (protobuf parsing failed: the file is truncated or "
                             "not ONNX); re-export or re-download it") from None
        raise ModelError(f"{path}: onnxruntime cannot load it ({msg}); re-export the model") from None
    banner = _fallback_banner(out.getvalue())
    if banner:
        raise ProviderError(f"provider {name} failed to build a session ({banner[:300]})")
    sess.disable_fallback()  # a failing run must raise, not print and go on elsewhere
    return sess


COPIES = ("MemcpyFromHost", "MemcpyToHost")  # inserted by onnxruntime around a GPU partition: not the model's


def kernels_by_provider(events: Sequence[dict[str, Any]]) -> Counter:
    """An onnxruntime profile (its JSON events) -> how many of the model's node kernels each provider ran."""
    ran: Counter = Counter()
    for e in events:
        args = e.get("args") or {}
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time") and args.get("provider"):
            if args.get("op_name") not in COPIES:
                ran[args["provider"]] += 1
    return ran


def check_ran(name: str, ran: Counter) -> str | None:
    """Raise ProviderError unless provider `name` ran nodes; a note when it ran only part of them."""
    ort_name = PROVIDERS.get(name, name)
    total = sum(ran.values())
    mine = ran.get(ort_name, 0)
    if mine == 0:
        seen = ", ".join(f"{p} {k}" for p, k in ran.most_common()) or "nothing"
        raise ProviderError(f"provider {name} loaded but ran none of the model's nodes in the warm-up (ran: {seen}); "
                            f"check the install: {INSTALL_HINTS.get(name, '')}")
    if mine < total:
        rest = ", ".join(f"{p.replace('ExecutionProvider', '')} {k}" for p, k in ran.most_common() if p != ort_name)
        return f"{name} runs {mine} of {total} node kernels; the rest: {rest}"
    return None


@contextlib.contextmanager
def profiled(opts: Any) -> Any:
    """Session options that profile into a private temp folder (never the cwd); yields the folder."""
    import tempfile  # GPU sessions only: not on a CPU run's cold start

    with tempfile.TemporaryDirectory(prefix="catdog-profile-") as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "warmup")
        try:
            yield Path(tmp)
        finally:
            opts.enable_profiling = False  # the options object serves the next candidate too


def warm_and_verify(sess: Any, name: str, x: Any) -> tuple[Any, str | None]:
    """Run the warm-up on a profiling session, stop profiling, check that `name` ran the graph.
    -> (the output, a partition note or None)."""
    try:
        out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    finally:
        profile = sess.end_profiling()  # also stops profiling: timed runs pay nothing
    import json

    events = json.loads(Path(profile).read_text()) if profile else []
    return out, check_ran(name, kernels_by_provider(events))
