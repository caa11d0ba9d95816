"""ONNX Runtime sessions with an honest provider choice: `auto` takes TensorRT > CUDA > CPU among
those that pass a real warm-up inference; a provider the user names either runs or is an error
(ORT itself would quietly fall back to CPU, so we check what it actually loaded)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from catdog.runtime.errors import MetadataError, ModelError, ProviderError, error_line
from catdog.runtime.files import file_sha256
from catdog.runtime.metadata import from_metadata_map

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
AUTO_ORDER = ("tensorrt", "cuda", "cpu")
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Session:
    """An InferenceSession plus what the runtime needs to know about it."""

    def __init__(self, ort_session: Any, provider: str, path: Path, warmup_output_shape: tuple[int, ...],
                 create_s: float = 0.0):
        self.ort = ort_session
        self.create_s = create_s  # seconds to build the InferenceSession (benchmarks report it)
        self.provider = provider
        self.path = path
        inp = ort_session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape: tuple[int | str | None, ...] = tuple(inp.shape)
        self.input_dtype = np.dtype(_ORT_DTYPES.get(inp.type, np.float32))
        self.input_type: str = inp.type
        self.output_names = [o.name for o in ort_session.get_outputs()]
        self.output_shape = tuple(ort_session.get_outputs()[0].shape)
        self.warmup_output_shape = warmup_output_shape
        self._binding = None

    @property
    def metadata_map(self) -> dict[str, str]:
        return dict(self.ort.get_modelmeta().custom_metadata_map)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run on one input batch; returns the first output."""
        try:
            if self.provider in ("cuda", "tensorrt"):
                return self._run_bound(x)
            return self.ort.run(self.output_names[:1], {self.input_name: x})[0]
        except Exception as e:  # ORT's pybind errors: name the model and the input that failed
            raise ModelError(f"{self.path}: inference failed on a {tuple(x.shape)} {x.dtype} input "
                             f"on {self.provider} ({error_line(e)})") from None

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        # IO binding: the output stays on the device until we copy it once, and ORT does not
        # allocate a fresh host buffer per call for the copy in.
        if self._binding is None:
            self._binding = self.ort.io_binding()
        b = self._binding
        b.bind_cpu_input(self.input_name, x)
        b.bind_output(self.output_names[0], "cuda")
        self.ort.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()[0]

    def __repr__(self) -> str:
        return f"Session({self.path.name}, provider={self.provider}, input={self.input_shape} {self.input_type})"


def available_providers() -> list[str]:
    """Short names of the providers this onnxruntime build offers (unknown ones by ORT name)."""
    import onnxruntime as ort

    by_ort = {v: k for k, v in PROVIDERS.items()}
    return [by_ort.get(p, p) for p in ort.get_available_providers()]


def gpu_name() -> str:
    """The GPU's name for cache keys: nvidia-smi on desktops, the device-tree model on Jetsons."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().splitlines()
            if out:
                return out[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return "unknown-gpu"


def tensorrt_version() -> str:
    try:
        import tensorrt  # optional; only present where TensorRT's Python wheel is installed

        return str(tensorrt.__version__)
    except Exception:  # noqa: BLE001 - any import failure means "unknown", the key stays honest
        return "unknown"


def trt_cache_dir(model: Path, root: Path | None) -> Path:
    """Engines are only valid for one model, one TensorRT version and one GPU: key the folder by all three."""
    root = root or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "catdog-edge" / "trt"
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"trt{tensorrt_version()}-{gpu_name()}").strip("-")
    return root / f"{file_sha256(model)[:16]}-{slug}"


def _provider_entry(name: str, trt: dict[str, Any], device_id: int) -> list[Any]:
    ort_name = PROVIDERS.get(name, name)
    # Exhaustive cuDNN search costs the first run only; arena growth by request keeps memory near
    # what the model needs instead of doubling (a Jetson shares it with the CPU).
    cuda = ("CUDAExecutionProvider", {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE",
                                      "arena_extend_strategy": "kSameAsRequested"})
    if name == "tensorrt":
        # TensorRT hands unsupported nodes to CUDA, then CPU; that is normal, not a fallback.
        return [(ort_name, {**trt, "device_id": device_id}), cuda, "CPUExecutionProvider"]
    if name == "cuda":
        return [cuda, "CPUExecutionProvider"]
    if name == "cpu":
        return [ort_name]
    return [ort_name, "CPUExecutionProvider"]


def _warmup_input(sess: Any, shape_hint: Sequence[int] | None) -> np.ndarray:
    inp = sess.get_inputs()[0]
    if shape_hint is None:
        try:
            meta = from_metadata_map(sess.get_modelmeta().custom_metadata_map)
        except MetadataError:
            meta = None  # the Classifier reports bad metadata with the file's name; warm up at 224
        size = meta.spec.size if meta else 224
        shape_hint = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else size) for i, d in enumerate(inp.shape)]
        if len(shape_hint) == 4 and inp.type == "tensor(uint8)" and not isinstance(inp.shape[3], int):
            shape_hint[3] = 3  # NHWC uint8 with a dynamic channel dim
        if len(shape_hint) == 4 and inp.type != "tensor(uint8)" and not isinstance(inp.shape[1], int):
            shape_hint[1] = 3
    dtype = _ORT_DTYPES.get(inp.type, np.float32)
    return np.full(tuple(shape_hint), 0.5 if dtype != np.uint8 else 128, dtype=dtype)


def _load(path: Path, name: str, opts: Any, trt: dict[str, Any], device_id: int) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=_provider_entry(name, trt, device_id))
    except Exception as e:  # ORT raises its own pybind classes; all mean "this file cannot load"
        msg = error_line(e)
        if "protobuf" in msg.lower() or "parsing" in msg.lower():
            raise ModelError(f"{path}: not a valid ONNX model (protobuf parsing failed: the file is truncated or "
                             "not ONNX); re-export or re-download it") from None
        raise ModelError(f"{path}: onnxruntime cannot load it ({msg}); re-export the model") from None


def _try_provider(path: Path, name: str, opts: Any, trt: dict[str, Any], device_id: int,
                  shape_hint: Sequence[int] | None, log: Log) -> Session:
    """Load with one provider, check ORT really loaded it, run a warm-up. Raises ProviderError."""
    t_create = time.perf_counter()
    try:
        sess = _load(path, name, opts, trt, device_id)
    except ModelError as e:
        if name == "cpu" or "protobuf" in str(e):
            raise  # the file itself is the problem; no provider would help
        raise ProviderError(f"provider {name} cannot build a session: {e}") from None
    create_s = time.perf_counter() - t_create
    loaded = sess.get_providers()
    if PROVIDERS.get(name, name) not in loaded:
        raise ProviderError(f"provider {name} failed to initialise (onnxruntime loaded only {loaded}); "
                            f"install: {INSTALL_HINTS.get(name, 'the onnxruntime build with it')}")
    out_shape = tuple(sess.get_outputs()[0].shape)
    if name == "cpu" and len(out_shape) >= 2 and all(isinstance(d, int) and d > 0 for d in out_shape[1:]):
        # CPU loads either run or fail on the first real batch with the same error; when the
        # class count is in the graph, a warm-up inference would only add to cold start.
        return Session(sess, name, path, (1, *out_shape[1:]), create_s)
    x = _warmup_input(sess, shape_hint)
    t0 = time.perf_counter()
    try:
        out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    except Exception as e:  # noqa: BLE001 - a warm-up failure on a GPU provider is a provider problem
        msg = error_line(e)
        if name == "cpu":
            raise ModelError(f"{path}: the model fails to run on a {tuple(x.shape)} input ({msg})") from None
        raise ProviderError(f"provider {name} failed its warm-up inference ({msg}); "
                            f"check the install: {INSTALL_HINTS.get(name, '')}") from None
    if name == "tensorrt" and time.perf_counter() - t0 > 2.0:
        log(f"TensorRT engine ready in {time.perf_counter() - t0:.0f} s")
    return Session(sess, name, path, tuple(np.shape(out)), create_s)


def open_session(
    path: str | os.PathLike,
    provider: str = "auto",
    threads: int | None = None,
    trt_fp16: bool = False,
    trt_int8: bool = False,
    trt_cache_dir: str | os.PathLike | None = None,
    warmup_shape: Sequence[int] | None = None,
    log: Log | None = _stderr,
    spinning: bool = True,
    device_id: int = 0,
) -> Session:
    """Open an ONNX model on `provider` ("auto" or a name in PROVIDERS). `log` gets one-line notices
    (which provider runs, TensorRT engine builds); pass None for silence. This is the only place an
    InferenceSession is made: the runtime, export's latency column and the benchmarks all use it."""
    import onnxruntime as ort

    log = log or (lambda _msg: None)
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file" if not path.exists() else f"{path}: is not a file")
    if provider != "auto" and provider not in PROVIDERS:
        raise ProviderError(f"unknown provider {provider!r}; known: auto, {', '.join(PROVIDERS)}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # ORT's own warnings would bury our one-line messages
    if threads:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        # Idle ORT threads spin-wait for the next op by default. In a pipelined folder run that burns
        # the cores the decode threads need (+10% img/s on 2 cores without it); on an idle CPU the
        # spin is what makes batch-1 latency low (-30%), so it stays on everywhere else.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    have = available_providers()
    trt: dict[str, Any] = {}
    if provider in ("auto", "tensorrt") and "tensorrt" in have:
        cache = trt_cache_dir_for(path, trt_cache_dir)
        trt = {"trt_fp16_enable": trt_fp16, "trt_int8_enable": trt_int8, "trt_engine_cache_enable": True,
               "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True,
               "trt_timing_cache_path": str(cache)}
        if not any(cache.glob("*.engine")):
            log(f"building a TensorRT engine for {path.name} (first run for this model, TensorRT and GPU; "
                f"this can take minutes); cached in {cache}")

    if provider != "auto":
        if provider not in have:
            raise ProviderError(f"provider {provider} is not available in this onnxruntime build "
                                f"(available: {', '.join(have)}); install: {INSTALL_HINTS.get(provider, '')}")
        sess = _try_provider(path, provider, opts, trt, device_id, warmup_shape, log)
        log(f"provider: {provider}")
        return sess

    failures = []
    for name in AUTO_ORDER:
        if name not in have:
            continue
        try:
            sess = _try_provider(path, name, opts, trt, device_id, warmup_shape, log)
        except ProviderError as e:
            failures.append(str(e))
            continue
        skipped = f" ({'; '.join(failures)})" if failures else ""
        log(f"provider: {name} (auto){skipped}")
        return sess
    raise ProviderError("no execution provider could run the model: " + "; ".join(failures))


def trt_cache_dir_for(path: Path, root: str | os.PathLike | None) -> Path:
    cache = trt_cache_dir(path, Path(root) if root else None)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProviderError(f"cannot create the TensorRT engine cache {cache}: {e.strerror}; "
                            "pass --trt-cache DIR") from None
    return cache
