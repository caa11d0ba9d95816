"""catdog-bench live: the runtime on a real RTSP camera, measured from outside. For each frame rate
and backend, a fresh camera (benchmarks/live/rtsp_camera.py under Debian's python3, --shared like a real
camera) and a real `catdog-runtime SOURCE --json` process: frames the camera sent (its SENT count),
frames the runtime read (the frame numbers in its JSON lines), frames classified (the lines), the
runtime's own drop count, frame age (the runtime's --timings when it has them), and the runtime's
CPU and RSS sampled with psutil. Each backend runs under its own Python: FFmpeg through the pip
OpenCV of this environment, GStreamer through Debian's python3-opencv in a --system-site-packages
venv (the Jetson recipe). Loopback only; every wait is bounded."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

Log = Callable[[str], None]
HERE = Path(__file__).resolve().parent
CAMERA, TOOLS = HERE / "rtsp_camera.py", HERE / "live_tools.py"
BACKENDS = ("ffmpeg", "gstreamer")
GST_SOURCE = ("gst:rtspsrc location={url} latency=0 protocols=tcp ! rtph264depay ! h264parse ! avdec_h264 "
              "! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false")
AGE_KEYS = ("age_ms", "age", "frame_age_ms")  # the runtime's --timings field for capture -> label
QUIET = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


@dataclass(frozen=True)
class LiveBenchConfig:
    photos: Path  # a folder of real photos: what the camera shows
    out_dir: Path
    pythons: dict[str, str]  # backend -> the Python that runs catdog-runtime and the decode timing
    camera_python: str = "/usr/bin/python3"
    fps: tuple[int, ...] = (15, 30)
    backends: tuple[str, ...] = BACKENDS
    seconds: float = 45.0  # measured seconds per cell, after the warm-up
    warmup_s: float = 3.0  # from the first classified frame
    size: tuple[int, int] = (640, 480)
    frames_per_image: int = 30
    decode_frames: int = 300
    decode_repeats: int = 5
    model: Path | None = None
    command: str = ""
    env: dict[str, str] = field(default_factory=dict)


def backends_arg(text: str) -> tuple[str, ...]:
    from catdog.runtime.spine.errors import InputError

    chosen = tuple(dict.fromkeys(b.strip() for b in text.split(",") if b.strip()))
    if not chosen or set(chosen) - set(BACKENDS):
        raise InputError(f"--backends takes ffmpeg and/or gstreamer, got {text!r}")
    return chosen


def size_arg(text: str) -> tuple[int, int]:
    from catdog.runtime.spine.errors import InputError

    m = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if not m or min(int(m.group(1)), int(m.group(2))) < 16:
        raise InputError(f"--size wants WIDTHxHEIGHT like 640x480, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def tool(python: str, *args: str, timeout: float = 180.0) -> dict[str, Any]:
    """Run live_tools.py under `python`; its JSON, or RuntimeError with its last line."""
    import os

    p = subprocess.run([python, str(TOOLS), *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **QUIET})
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        raise RuntimeError(f"{python} {TOOLS.name} {args[0]}: {why}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def unavailable(backend: str, probe: dict[str, Any] | None, python: str | None) -> str | None:
    """One line saying why `backend` cannot run under `python` and what to install; None if it can."""
    recipe = ("make the Jetson-recipe venv: /usr/bin/python3 -m venv --system-site-packages V && V/bin/pip install . "
              "onnxruntime (with apt's python3-opencv), then pass --gst-python V/bin/python")
    if python is None:
        return f"{backend}: no Python given; " + (recipe if backend == "gstreamer" else "pass --ffmpeg-python")
    if probe is None:
        return f"{backend}: {python} does not run; pass a working Python"
    cv = probe.get("opencv")
    if not cv:
        return f"{backend}: {python} has no OpenCV; " + (recipe if backend == "gstreamer"
                                                          else "pip install opencv-python-headless")
    if not cv.get(backend):
        fix = recipe if backend == "gstreamer" else "pip install opencv-python-headless (its FFmpeg backend)"
        return f"{backend}: {python}'s OpenCV {cv['version']} ({cv['path']}) is built without {backend}; {fix}"
    if not (probe.get("onnxruntime") and probe.get("runtime")):
        what = "onnxruntime" if not probe.get("onnxruntime") else "catdog-edge"
        fix = recipe if backend == "gstreamer" else "pip install -e '.[cpu]'"
        return f"{backend}: {python} has OpenCV but not {what}; {fix}"
    return None


class Camera:
    """rtsp_camera.py in its own process; `sent` once stopped."""

    def __init__(self, cfg: LiveBenchConfig, images: list[Path], fps: int, timeout_s: float = 30.0):
        args = [cfg.camera_python, str(CAMERA), "--images", ",".join(map(str, images)), "--fps", str(fps),
                "--size", f"{cfg.size[0]}x{cfg.size[1]}", "--frames-per-image", str(cfg.frames_per_image), "--shared"]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url, self.sent = "", None
        ready, _, _ = select.select([self.p.stdout], [], [], timeout_s)
        line = self.p.stdout.readline() if ready else ""
        m = re.match(r"READY (rtsp://127\.0\.0\.1:\d+/\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"the RTSP camera did not start: {line.strip() or self.p.stderr.read().strip()}")
        self.url = m.group(1)

    def stop(self) -> int | None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            out, _ = self.p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        m = re.search(r"^SENT (\d+)", out or "", re.M)
        self.sent = int(m.group(1)) if m else None
        return self.sent


class Runtime:
    """A real catdog-runtime --json process; each stdout line stamped when it arrives (perf_counter
    here and time.perf_counter in the runtime are the same CLOCK_MONOTONIC on Linux)."""

    def __init__(self, python: str, source: str, model: Path | None, timings: bool, env: dict[str, str]):
        import os

        argv = [python, "-m", "catdog.runtime", source, "--json", "--provider", "cpu"]
        argv += ["--model", str(model)] if model else []
        argv += ["--timings"] if timings else []
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, **QUIET, **env})
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.err: list[str] = []
        self.t_start = time.perf_counter()
        self._threads = [threading.Thread(target=self._out, daemon=True),
                         threading.Thread(target=lambda: self.err.extend(iter(self.p.stderr.readline, "")),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _out(self) -> None:
        for line in iter(self.p.stdout.readline, ""):
            t = time.perf_counter()
            try:
                self.lines.append((t, json.loads(line)))
            except ValueError:
                pass

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)  # the runtime's clean stop: outputs closed, summary printed
        try:
            rc = self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
        for t in self._threads:
            t.join(5)
        return rc

    def summary(self) -> dict[str, str]:
        """The runtime's stderr summary rows (`  key  value`) after its `-- ` title."""
        rows: dict[str, str] = {}
        started = False
        for line in self.err:
            if line.startswith("-- "):
                started, rows = True, {}
            elif started and (m := re.match(r"^  (\S(?:.*?\S)?)\s{2,}(.+)$", line.rstrip("\n"))):
                rows[m.group(1)] = m.group(2)
        return rows


class Sampler:
    """CPU time and RSS of processes, sampled every `every_s`; and the whole machine's CPU use."""

    def __init__(self, pids: dict[str, int], every_s: float = 0.5):
        import psutil

        self.procs = {k: psutil.Process(v) for k, v in pids.items()}
        self.rss: dict[str, list[float]] = {k: [] for k in pids}
        self.every_s, self.stop_event = every_s, threading.Event()
        self.cpu0 = self._cpu()
        self.t0 = time.perf_counter()
        psutil.cpu_percent(None)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _cpu(self) -> dict[str, float]:
        out = {}
        for k, p in self.procs.items():
            try:
                c = p.cpu_times()
                out[k] = c.user + c.system
            except Exception:  # noqa: BLE001 - a process that ended: no more CPU
                out[k] = float("nan")
        return out

    def _loop(self) -> None:
        while not self.stop_event.wait(self.every_s):
            for k, p in self.procs.items():
                try:
                    self.rss[k].append(p.memory_info().rss / 1e6)
                except Exception:  # noqa: BLE001
                    pass

    def finish(self) -> dict[str, Any]:
        import psutil

        wall = time.perf_counter() - self.t0
        machine = psutil.cpu_percent(None)
        cpu1 = self._cpu()
        self.stop_event.set()
        self.thread.join(5)
        out: dict[str, Any] = {"machine_cpu_percent": machine, "cores": psutil.cpu_count()}
        for k in self.procs:
            r = self.rss[k]
            out[k] = {"cpu_percent": 100.0 * (cpu1[k] - self.cpu0[k]) / wall if wall > 0 else None,
                      "rss_mb_median": pct(r, 0.5), "rss_mb_max": max(r) if r else None}
        ours = sum(out[k]["cpu_percent"] or 0.0 for k in self.procs)
        out["others_cpu_percent"] = max(0.0, machine * out["cores"] - ours)  # other jobs, % of one core
        return out


def frame_index(source: str) -> int | None:
    m = re.search(r"#(\d+)$", source or "")
    return int(m.group(1)) if m else None


def age_ms(timings: dict[str, Any] | None) -> float | None:
    for k in AGE_KEYS:
        if timings and isinstance(timings.get(k), (int, float)):
            return float(timings[k])
    return None
