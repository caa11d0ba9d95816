"""TensorRT, decided before any engine is built. onnxruntime-gpu lists TensorrtExecutionProvider
whether or not TensorRT's libraries are installed, so a cheap dlopen of libnvinfer says first
whether trying it makes sense (`auto` skips it in milliseconds instead of hashing the model and
announcing a build). Then: the optimization profile the run's batch sizes need (one engine for the
whole run, never a second build in the middle of it), the provider options that follow from it,
the engine cache key, and whether a model is INT8 that TensorRT can take. Pure functions where
possible, so the GPU-only decisions are tested on any machine."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from catdog.runtime.spine.errors import ProviderError
from catdog.runtime.spine.metadata import ModelMetadata

# The sonames onnxruntime-gpu's TensorRT provider links against (TensorRT 10, then 8.6).
NVINFER = (("nvinfer_10.dll", "nvinfer.dll") if sys.platform == "win32"
           else ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"))
INT8_EXPORT_HINT = "export one with: catdog-export --int8-for tensorrt --calib DIR (then run model.int8-trt.onnx)"


@dataclass(frozen=True)
class TrtLibrary:
    path: str  # what dlopen loaded
    version: str  # from the library itself: the cache key must change when TensorRT does


def trt_version_text(v: int) -> str:
    """getInferLibVersion() -> "10.3.0". TensorRT 10 encodes major*10000 + minor*100 + patch,
    earlier releases major*1000 + minor*100 + patch."""
    if v >= 100000:
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    return f"{v // 1000}.{v // 100 % 10}.{v % 100}"


def _pip_candidates(names: Sequence[str]) -> list[str]:
    """pip's tensorrt wheels keep the libraries in site-packages/tensorrt_libs, off the loader's
    path: loading one there by full path (RTLD_GLOBAL) lets onnxruntime's dlopen find it by soname."""
    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(list(spec.submodule_search_locations)[0])
    return [str(folder / n) for n in names if (folder / n).is_file()]


def dlopen_first(names: Sequence[str]) -> tuple[str, Any]:
    """The first of `names` the dynamic loader can load -> (name, handle); ProviderError naming
    every one tried and the first reason otherwise."""
    import ctypes  # imported where TensorRT is considered, not on every start

    errors = []
    for name in names:
        try:
            return name, ctypes.CDLL(name, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        except OSError as e:
            errors.append(str(e).split(":")[-1].strip() or type(e).__name__)
    first = errors[0] if errors else "-"
    raise ProviderError(f"TensorRT's library cannot be loaded (tried {', '.join(names)}: {first}); install "
                        "TensorRT (pip install tensorrt-cu12, or JetPack) and put its libraries on the library path")


@functools.lru_cache(maxsize=4)
def load_nvinfer(names: tuple[str, ...] = NVINFER) -> TrtLibrary:
    """libnvinfer, loaded once per process (onnxruntime loads it anyway when TensorRT runs)."""
    import ctypes

    name, lib = dlopen_first([*names, *_pip_candidates(names)])
    try:
        fn = lib.getInferLibVersion
        fn.restype = ctypes.c_int32
        version = trt_version_text(int(fn()))
    except AttributeError:
        version = "unknown"
    return TrtLibrary(name, version)


@dataclass(frozen=True)
class TrtProfile:
    """One optimization profile over the batch dimension: TensorRT builds one engine valid for
    min..max, tuned for opt. Every batch a run will feed must lie in it, or TensorRT fails."""

    min_batch: int
    opt_batch: int
    max_batch: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"profile needs 1 <= min <= opt <= max, got {self}")

    @classmethod
    def for_batches(cls, batches: Sequence[int]) -> "TrtProfile":
        """The run's batch sizes -> the profile covering them, tuned for the largest (the run's
        steady state: a folder's full batches; the last, partial one is also in range)."""
        if not batches or min(batches) < 1:
            raise ValueError(f"batch sizes must be positive, got {list(batches)}")
        return cls(min(batches), max(batches), max(batches))

    @property
    def slug(self) -> str:
        return f"b{self.min_batch}-{self.opt_batch}-{self.max_batch}"


def profile_options(input_name: str, shape: Sequence[Any], profile: TrtProfile) -> dict[str, str]:
    """trt_profile_{min,opt,max}_shapes for a graph input whose batch dimension is dynamic; {} when
    it is fixed (TensorRT then needs no profile). `shape`: the graph's batch dimension (a name when
    dynamic), then every other dimension concrete (as the run feeds them)."""
    if isinstance(shape[0], int) and shape[0] > 0:
        return {}
    if ":" in input_name or "," in input_name:  # the option's own separators
        raise ProviderError(f"input name {input_name!r} cannot be written in a TensorRT profile option")
    rest = [int(d) for d in shape[1:]]

    def dims(b: int) -> str:
        return f"{input_name}:" + "x".join(str(d) for d in (b, *rest))

    return {"trt_profile_min_shapes": dims(profile.min_batch), "trt_profile_opt_shapes": dims(profile.opt_batch),
            "trt_profile_max_shapes": dims(profile.max_batch)}


def precision_of(fp16: bool, int8: bool) -> str:
    return "+".join(p for p, on in (("fp16", fp16), ("int8", int8)) if on) or "fp32"


def engine_key(model_sha256: str, trt_version: str, gpu: str, precision: str, profile: str) -> str:
    """An engine is valid for one model, one TensorRT version, one GPU, one precision and one
    profile: the cache folder is named by all five, so a change of any builds a new engine
    instead of loading a stale one."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"trt{trt_version}-{gpu}-{precision}-{profile}").strip("-")
    return f"{model_sha256[:16]}-{slug}"


def timing_key(trt_version: str, gpu: str) -> str:
    """The timing cache holds kernel timings, valid across models on one GPU and TensorRT version."""
    return "timing-" + re.sub(r"[^A-Za-z0-9.]+", "-", f"trt{trt_version}-{gpu}").strip("-")


def cache_root(root: str | os.PathLike | None) -> Path:
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "catdog-edge" / "trt"


def trt_options(device_id: int, fp16: bool, int8: bool, engine_dir: Path, timing_dir: Path,
                profile: dict[str, str]) -> dict[str, Any]:
    """The TensorRT provider's options: every cache has an absolute path (never the cwd)."""
    return {"device_id": device_id, "trt_fp16_enable": fp16, "trt_int8_enable": int8,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engine_dir.resolve()),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(timing_dir.resolve()), **profile}


def smi_selector(device_id: int, visible: str | None) -> str:
    """The nvidia-smi -i argument for CUDA device `device_id`: nvidia-smi ignores
    CUDA_VISIBLE_DEVICES, so a device id counts within that list when it is set."""
    if not visible:
        return str(device_id)
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    if device_id >= len(entries):
        raise ProviderError(f"--device-id {device_id}: CUDA_VISIBLE_DEVICES={visible} makes only "
                            f"{len(entries)} GPU(s) visible")
    return entries[device_id]


def gpu_name(device_id: int = 0) -> str:
    """The name of the GPU `device_id` (cache keys, reports): nvidia-smi on desktops, the
    device-tree model on Jetsons (one integrated GPU, no nvidia-smi before JetPack 6)."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi:
        sel = smi_selector(device_id, os.environ.get("CUDA_VISIBLE_DEVICES"))
        try:
            out = subprocess.run([smi, "-i", sel, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().splitlines()
            if out:
                return out[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        return "unknown-gpu"


def int8_kind(meta: ModelMetadata | None) -> str | None:
    """None: not an INT8 model; "symmetric": int8 QDQ with zero points 0 (what TensorRT takes,
    as catdog-export --int8-for tensorrt proves and records); "asymmetric": any other INT8."""
    if meta is None or meta.precision != "int8":
        return None
    q = meta.extra.get("int8")
    return "symmetric" if isinstance(q, dict) and q.get("symmetric") is True else "asymmetric"


def check_trt_int8(meta: ModelMetadata | None, model: Path) -> None:
    """--trt-int8 runs INT8 only on a symmetric QDQ model: TensorRT takes symmetric int8 Q/DQ and
    nothing else, and onnxruntime passes it no calibration table, so on an fp32 model the flag
    would build an engine that is not INT8 while its row says it is."""
    kind = int8_kind(meta)
    if kind == "symmetric":
        return
    if meta is None:
        why = "has no catdog metadata, so nothing says it is symmetric int8 QDQ"
    elif kind is None:
        why = f"is {meta.precision}, not a quantized model (without a calibration table TensorRT would not run INT8)"
    else:
        why = "is asymmetric INT8 (uint8 activations, zero points != 0), which TensorRT cannot take"
    raise ProviderError(f"--trt-int8: {model.name} {why}; {INT8_EXPORT_HINT}")
