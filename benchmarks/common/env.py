"""The environment block every report carries: what machine, which libraries, which accelerators.
Everything is read from the system (files, libraries, tools) when present; missing facts are None,
never guessed. torch is imported only if it is installed, and only here for its version."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ISA_FLAGS = {  # report name -> /proc/cpuinfo flag(s); any match counts
    "avx2": ("avx2",),
    "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "amx": ("amx_tile",),
    "fma": ("fma",),
    "f16c": ("f16c",),
    "neon": ("neon", "asimd"),
    "asimddp": ("asimddp",),  # ARM dot product (int8)
}
REQUIRED_KEYS = (
    "cpu", "cores_logical", "cores_physical", "isa", "ram_gb", "os", "python", "numpy", "opencv",
    "onnxruntime", "torch", "gpu", "jetson",
)


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def cpu_info() -> dict[str, Any]:
    from catdog.runtime.spine.isa import int8_path

    text = _read("/proc/cpuinfo") or ""
    model = None
    for key in ("model name", "Hardware", "Model", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
        if m:
            model = m.group(1).strip()
            break
    flags: set[str] = set()
    for m in re.finditer(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M):
        flags.update(m.group(1).split())
    isa = {name: any(f in flags for f in alts) for name, alts in ISA_FLAGS.items()}
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pairs = set(re.findall(r"physical id\s*:\s*(\d+)[\s\S]*?core id\s*:\s*(\d+)", text))
        physical = len(pairs) or None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical,
        "cores_usable": affinity,
        "isa": isa,
        "int8_path": int8_path(frozenset(flags)),  # what every CPU INT8 figure of the report ran on
    }


def ram_gb() -> float | None:
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", _read("/proc/meminfo") or "", re.M)
    if m:
        return round(int(m.group(1)) / 1024**2, 1)
    try:
        import psutil

        return round(psutil.virtual_memory().total / 1024**3, 1)
    except ImportError:
        return None


def opencv_info() -> dict[str, Any] | None:
    try:
        import cv2
    except ImportError:
        return None
    build = cv2.getBuildInformation()

    def flag(name: str) -> bool:
        m = re.search(rf"^\s*{name}:\s*(\S+)", build, re.M)
        return bool(m) and m.group(1).upper() not in ("NO", "OFF")

    gui = re.search(r"^\s*GUI:\s*(\S+)", build, re.M)
    return {
        "version": cv2.__version__,
        "gstreamer": flag("GStreamer"),
        "v4l2": flag("v4l/v4l2") or flag("V4L/V4L2") or flag("v4l2"),
        "ffmpeg": flag("FFMPEG"),
        "gui": gui.group(1) if gui and gui.group(1).upper() not in ("NONE", "NO") else None,
        "cuda": flag("NVIDIA CUDA"),
    }


def ort_info() -> dict[str, Any] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return {"version": ort.__version__, "providers": ort.get_available_providers(), "device": ort.get_device()}


def torch_info() -> dict[str, Any] | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch  # only the version and the CUDA build; torch stays optional everywhere else

    cuda = torch.cuda.is_available()
    return {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "threads": torch.get_num_threads(),
    }


def _lib_version(pattern: str) -> str | None:
    """Version of a shared library from ldconfig's cache (e.g. libnvinfer.so.10 -> '10')."""
    out = _run(["ldconfig", "-p"]) or ""
    m = re.search(rf"{pattern}\.so\.([\d.]+)", out)
    return m.group(1) if m else None


def gpu_info() -> dict[str, Any] | None:
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    gpus = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    smi = _run(["nvidia-smi"]) or ""
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", smi)
    info = {
        "gpus": gpus,
        "cuda_driver": cuda.group(1) if cuda else None,
        "cudart": _lib_version(r"libcudart"),
        "cudnn": _lib_version(r"libcudnn"),
        "tensorrt": _lib_version(r"libnvinfer"),
    }
    if importlib.util.find_spec("tensorrt") is not None:
        import tensorrt  # the Python binding's version is the precise one

        info["tensorrt"] = tensorrt.__version__
    return info if gpus or any(v for k, v in info.items() if k != "gpus") else None


def jetson_info() -> dict[str, Any] | None:
    release = _read("/etc/nv_tegra_release")
    if release is None:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
    mode = _run(["nvpmodel", "-q"])
    jetpack = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    model = (_read("/proc/device-tree/model") or "").strip("\x00\n ") or None
    return {
        "l4t": f"{m.group(1)}.{m.group(2)}" if m else release.splitlines()[0].strip(),
        "jetpack": jetpack,
        "model": model,
        "power_mode": mode.splitlines()[0].replace("NV Power Mode:", "").strip() if mode else None,
    }


def collect_env() -> dict[str, Any]:
    import numpy

    env = cpu_info()
    env.update(
        ram_gb=ram_gb(),
        os=f"{platform.system()} {platform.release()} ({platform.platform(terse=True)})",
        python=platform.python_version(),
        numpy=numpy.__version__,
        opencv=opencv_info(),
        onnxruntime=ort_info(),
        torch=torch_info(),
        gpu=gpu_info(),
        jetson=jetson_info(),
    )
    return env


def _yn(v: Any) -> str:
    return "yes" if v else "no"


def env_lines(env: dict[str, Any]) -> list[str]:
    """Human lines for report.md and doctor."""
    isa = ", ".join(k for k, v in env["isa"].items() if v) or "none detected"
    cv, ort, th = env["opencv"], env["onnxruntime"], env["torch"]
    lines = [
        f"CPU: {env['cpu']} ({env['arch']}), {env['cores_logical']} logical / {env['cores_physical']} physical cores, "
        f"{env['cores_usable']} usable",
        f"ISA: {isa}" + (f"; CPU INT8 integer path: {env['int8_path']}" if env.get("int8_path") else ""),
        f"RAM: {env['ram_gb']} GB; OS: {env['os']}; Python {env['python']}; numpy {env['numpy']}",
        "OpenCV: " + (f"{cv['version']} (GStreamer: {_yn(cv['gstreamer'])}, V4L2: {_yn(cv['v4l2'])}, "
                      f"FFMPEG: {_yn(cv['ffmpeg'])}, GUI: {cv['gui'] or 'none'})" if cv else "not installed"),
        "onnxruntime: " + (f"{ort['version']} providers {', '.join(ort['providers'])}" if ort else "not installed"),
        "torch: " + (f"{th['version']} (CUDA build {th['cuda_build']}, GPU available: {th['cuda_available']})"
                     if th else "not installed"),
    ]
    gpu = env["gpu"]
    if gpu:
        names = "; ".join(f"{g['name']} (driver {g['driver']}, {g['memory']})" for g in gpu["gpus"]) or "none visible"
        lines.append(f"GPU: {names}; CUDA {gpu['cuda_driver']}, cudart {gpu['cudart']}, cuDNN {gpu['cudnn']}, "
                     f"TensorRT {gpu['tensorrt']}")
    else:
        lines.append("GPU: none (no nvidia-smi, no CUDA libraries)")
    if env["jetson"]:
        j = env["jetson"]
        lines.append(f"Jetson: {j['model']}, L4T {j['l4t']}, JetPack {j['jetpack']}, power mode {j['power_mode']}")
    return lines
