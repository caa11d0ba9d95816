"""ONNX Runtime sessions with an honest provider choice: `auto` takes TensorRT > CUDA > CPU among
those that pass a real warm-up inference; a provider the user names either runs or is an error.
onnxruntime's own fallback is off (see providers.py), GPU sessions warm up at the batch size the
run will use, and their warm-up is profiled to prove the provider asked for ran the graph."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from catdog.runtime.engine import trt as trtlib
from catdog.runtime.engine.providers import (
    INSTALL_HINTS,
    PROVIDERS,
    available_providers,
    create_session,
    profiled,
    provider_entry,
    warm_and_verify,
    warmup_shape,
)
from catdog.runtime.engine.request import Log, Parsed, Request, parsed_once
from catdog.runtime.spine.boundary import say
from catdog.runtime.spine.errors import MetadataError, ModelError, ProviderError, error_line
from catdog.runtime.spine.fileio import file_sha256
from catdog.runtime.spine.metadata import ModelMetadata

AUTO_ORDER = ("tensorrt", "cuda", "cpu")
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(float16)": np.float16}



class Session:
    """An InferenceSession plus what the runtime needs to know about it."""

    def __init__(self, ort_session: Any, provider: str, path: Path, warmup_output_shape: tuple[int, ...],
                 create_s: float = 0.0, device_id: int = 0, parsed: Parsed | None = None):
        self.ort = ort_session
        parsed = parsed or Parsed.of(ort_session, path)
        self.metadata: ModelMetadata | None = parsed.meta  # None: no catdog metadata (a third-party model)
        self.metadata_error: MetadataError | None = parsed.error  # metadata there, but unreadable
        self.create_s = create_s  # seconds to build the InferenceSession (benchmarks report it)
        self.provider = provider
        self.device_id = device_id
        self.path = path
        inp = ort_session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape: tuple[int | str | None, ...] = tuple(inp.shape)
        self.input_dtype = np.dtype(_ORT_DTYPES.get(inp.type, np.float32))
        self.input_type: str = inp.type
        self.output_names = [o.name for o in ort_session.get_outputs()]
        self.output_shape = tuple(ort_session.get_outputs()[0].shape)
        self.warmup_output_shape = warmup_output_shape
        self._binding: Any = None  # onnxruntime's IOBinding, made on the first bound run

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
        # allocate a fresh host buffer per call for the copy in. On the session's own GPU.
        b = self._binding
        if b is None:
            b = self._binding = self.ort.io_binding()
        b.bind_cpu_input(self.input_name, x)
        b.bind_output(self.output_names[0], "cuda", self.device_id)
        self.ort.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()[0]

    def __repr__(self) -> str:
        return f"Session({self.path.name}, provider={self.provider}, input={self.input_shape} {self.input_type})"








def _input_for(sess: Any, req: Request) -> np.ndarray:
    inp = sess.get_inputs()[0]
    meta = parsed_once(sess, req).meta
    shape = warmup_shape(inp.shape, inp.type, meta.spec.size if meta else 224, max(req.batches))
    dtype = _ORT_DTYPES.get(inp.type, np.float32)
    return np.full(shape, 0.5 if dtype != np.uint8 else 128, dtype=dtype)


def _try_provider(req: Request, name: str, trt: dict[str, Any], verify: bool | None = None) -> Session:
    """Load with one provider, check ORT really loaded it, warm up. `verify` (default: every
    provider but the CPU, whose cold start it would slow) profiles the warm-up to prove the
    provider ran the graph. Raises ProviderError, or ModelError for the file itself."""
    verify = name != "cpu" if verify is None else verify
    with profiled(req.opts) if verify else contextlib.nullcontext():  # the profile lives until verified
        return _open_and_warm(req, name, trt, verify)


def _open_and_warm(req: Request, name: str, trt: dict[str, Any], verify: bool) -> Session:
    gpu = name != "cpu"
    t_create = time.perf_counter()
    try:
        sess = create_session(req.path, name, req.opts, provider_entry(name, trt, req.device_id, req.tf32))
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
    if not verify and not gpu and len(out_shape) >= 2 and all(isinstance(d, int) and d > 0 for d in out_shape[1:]):
        # CPU loads either run or fail on the first real batch with the same error; when the
        # class count is in the graph, a warm-up inference would only add to cold start.
        return Session(sess, name, req.path, (1, *out_shape[1:]), create_s, req.device_id, parsed_once(sess, req))
    x = _input_for(sess, req)
    t0 = time.perf_counter()
    try:
        if verify:
            out, note = warm_and_verify(sess, name, x)
            if note:
                req.log(note)
        else:
            out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    except ProviderError:
        raise
    except Exception as e:  # noqa: BLE001 - a warm-up failure on a GPU provider is a provider problem
        msg = error_line(e)
        if not gpu:
            raise ModelError(f"{req.path}: the model fails to run on a {tuple(x.shape)} input ({msg})") from None
        raise ProviderError(f"provider {name} failed its warm-up inference at batch {x.shape[0]} ({msg}); "
                            f"check the install: {INSTALL_HINTS.get(name, '')}") from None
    if name == "tensorrt" and time.perf_counter() - t0 > 2.0:
        req.log(f"TensorRT engine ready in {time.perf_counter() - t0:.0f} s")
    return Session(sess, name, req.path, tuple(np.shape(out)), create_s, req.device_id, parsed_once(sess, req))


def _peek(req: Request) -> tuple[Any, ModelMetadata | None]:
    """The model's input and metadata from a CPU session with graph optimization off (quick):
    TensorRT's options (profile, INT8) must be known before its session is built. The metadata
    parsed here is the open's one parse (req.parsed): nothing after it parses again."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = create_session(req.path, "cpu", opts, ["CPUExecutionProvider"])
    return sess.get_inputs()[0], parsed_once(sess, req).meta


def _skip_or_raise(req: Request, explicit: bool, why: str) -> None:
    if explicit:
        raise ProviderError(f"provider tensorrt: {why}")
    req.log(f"auto: skipping TensorRT: {why}")  # one line, then CUDA / CPU


def _trt_setup(req: Request, explicit: bool, fp16: bool, int8: bool, root: str | os.PathLike | None,
               nvinfer: tuple[str, ...] = trtlib.NVINFER) -> dict[str, Any] | None:
    """TensorRT's provider options for this model and run; None when `auto` should skip it. The
    cheap checks come first: no model hashing, nvidia-smi or build notice for a TensorRT whose
    libraries cannot even load."""
    try:
        lib = trtlib.load_nvinfer(nvinfer)
    except ProviderError as e:
        _skip_or_raise(req, explicit, str(e))
        return None
    inp, meta = _peek(req)
    kind = trtlib.int8_kind(meta)
    if int8:
        trtlib.check_trt_int8(meta, req.path)
    if kind == "asymmetric":
        _skip_or_raise(req, explicit, f"{req.path.name} is asymmetric INT8 (uint8 activations), which "
                                      f"TensorRT cannot take; {trtlib.INT8_EXPORT_HINT}")
        return None
    int8 = int8 or kind == "symmetric"  # Q/DQ nodes need the builder's INT8 flag to build at all
    profile = trtlib.TrtProfile.for_batches(req.batches)
    filled = warmup_shape(inp.shape, inp.type, meta.spec.size if meta else 224, profile.opt_batch)
    shapes = trtlib.profile_options(inp.name, (inp.shape[0], *filled[1:]), profile)
    gpu = trtlib.gpu_name(req.device_id)
    key = trtlib.engine_key(file_sha256(req.path), lib.version, gpu, trtlib.precision_of(fp16, int8),
                            profile.slug if shapes else "static")
    base = trtlib.cache_root(root)
    engines, timing = base / key, base / trtlib.timing_key(lib.version, gpu)
    for folder in (engines, timing):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProviderError(f"cannot create the TensorRT cache {folder}: {e.strerror}; "
                                "pass --trt-cache DIR") from None
    if not any(engines.glob("*.engine")):
        req.log(f"building a TensorRT engine for {req.path.name} (first run for this model, TensorRT, GPU, precision "
                f"and batch profile {profile.slug}; this can take minutes); cached in {engines}")
    return trtlib.trt_options(req.device_id, fp16, int8, engines, timing, shapes)


def _candidates(provider: str, have: list[str]) -> list[str]:
    if provider == "auto":
        return [p for p in AUTO_ORDER if p in have]
    if provider not in have:
        raise ProviderError(f"provider {provider} is not available in this onnxruntime build "
                            f"(available: {', '.join(have)}); install: {INSTALL_HINTS.get(provider, '')}")
    return [provider]


def open_session(
    path: str | os.PathLike,
    provider: str = "auto",
    threads: int | None = None,
    trt_fp16: bool = False,
    trt_int8: bool = False,
    trt_cache_dir: str | os.PathLike | None = None,
    log: Log | None = say,
    spinning: bool = True,
    device_id: int = 0,
    batches: Sequence[int] = (1,),
    cuda_tf32: bool | None = None,
    simulate_qdq: bool = False,
) -> Session:
    """Open an ONNX model on `provider` ("auto" or a name in PROVIDERS). `batches`: the batch sizes
    the run will feed (TensorRT's profile covers them; GPU warm-ups run at the largest). `log`
    gets one-line notices (which provider runs, TensorRT engine builds); None for silence. The
    only place an InferenceSession is made for a model file: the runtime, export's parity and the
    benchmarks all use it. `simulate_qdq` (CPU only): graph optimization off, so an INT8 QDQ
    model runs as fake quantization on fp32 kernels (isa.SIMULATED), not on this CPU's integer
    kernels: what an engine that accumulates in int32 (TensorRT) computes, on any CPU."""
    import onnxruntime as ort

    log = log or (lambda _msg: None)
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file" if not path.exists() else f"{path}: is not a file")
    if provider != "auto" and provider not in PROVIDERS:
        raise ProviderError(f"unknown provider {provider!r}; known: auto, {', '.join(PROVIDERS)}")
    if (trt_fp16 or trt_int8) and provider not in ("auto", "tensorrt"):
        raise ProviderError(f"--trt-fp16 / --trt-int8 apply to TensorRT; --provider {provider} would ignore them")
    if simulate_qdq and provider != "cpu":
        raise ProviderError(f"simulated quantization runs on the CPU provider, not {provider}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # ORT's own warnings would bury our one-line messages
    if simulate_qdq:  # no QDQ fusion into integer kernels: each Q/DQ op runs on its own
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        # Idle ORT threads spin-wait for the next op by default. In a pipelined folder run that burns
        # the cores the decode threads need (+10% img/s on 2 cores without it); on an idle CPU the
        # spin is what makes batch-1 latency low (-30%), so it stays on everywhere else.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    else:
        # ...but only while a run lasts: by default the pool keeps spinning after run() returns,
        # taking the cores from whatever runs next (the next frame's decode, another session: the
        # benchmark's interleaved models, whose INT8 lost to fp32 at batch 1 on 2 threads that way).
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    req = Request(path, opts, device_id, tuple(batches), cuda_tf32, log)
    names = _candidates(provider, available_providers())
    trt: dict[str, Any] | None = {}
    if "tensorrt" in names:
        trt = _trt_setup(req, provider == "tensorrt", trt_fp16, trt_int8, trt_cache_dir)
        if trt is None:
            names.remove("tensorrt")
    elif trt_int8 or trt_fp16:
        log("note: TensorRT is not available here: --trt-fp16 / --trt-int8 have no effect")
    if provider != "auto":
        sess = _try_provider(req, provider, trt or {})
        log(f"provider: {provider}")
        return sess
    failures = []
    for name in names:
        try:
            sess = _try_provider(req, name, trt or {})
        except ProviderError as e:
            failures.append(str(e))
            continue
        skipped = f" ({'; '.join(failures)})" if failures else ""
        log(f"provider: {name} (auto){skipped}")
        return sess
    raise ProviderError("no execution provider could run the model: " + "; ".join(failures))
