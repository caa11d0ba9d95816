"""catdog-bench live, end to end: probe each backend's Python, time decoding alone, then one cell per
frame rate and backend (a fresh camera and runtime each; benchmarks/live/measure.py measures), then
reports/<name>/report.{md,json} (benchmarks/live/report.py renders)."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from catdog.benchmarks.live.measure import (
    GST_SOURCE,
    Camera,
    LiveBenchConfig,
    Log,
    Runtime,
    Sampler,
    age_ms,
    frame_index,
    pct,
    tool,
    unavailable,
)
from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.folders import list_images

FIRST_FRAME_S = 60.0  # the longest a runtime may take to classify its first frame


def _probe(python: str | None) -> dict[str, Any] | None:
    if python is None:
        return None
    try:
        return tool(python, "probe", timeout=60)
    except (OSError, RuntimeError, ValueError):
        return None


def has_timings(python: str) -> bool:
    """Whether this runtime has the opt-in per-frame stage timings (`--timings` in its --help)."""
    import subprocess

    try:
        p = subprocess.run([python, "-m", "catdog.runtime", "--help"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
    except (OSError, subprocess.SubprocessError):
        return False
    return "--timings" in p.stdout


def decode_alone(cfg: LiveBenchConfig, images: list[Path], ok: dict[str, bool], log: Log) -> list[dict[str, Any]]:
    """The camera's H.264 (same encoder settings) as a file, decoded flat out by each backend's OpenCV."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="catdog-live-") as tmp:
        for fps in cfg.fps:
            path = Path(tmp) / f"camera-{fps}fps.mkv"
            try:
                tool(cfg.camera_python, "encode", str(path), "--images", ",".join(map(str, images)),
                     "--size", f"{cfg.size[0]}x{cfg.size[1]}", "--fps", str(fps),
                     "--frames-per-image", str(cfg.frames_per_image), "--frames", str(cfg.decode_frames))
                made = None
            except (OSError, RuntimeError, ValueError) as e:
                made = str(e)
            for b in cfg.backends:
                if not ok.get(b):
                    continue
                log(f"decode alone: {b}, the {fps} fps stream, {cfg.decode_repeats} x {cfg.decode_frames} frames")
                try:  # a failure is one line in the report, not a traceback
                    if made:
                        raise RuntimeError(made)
                    r = tool(cfg.pythons[b], "decode", str(path), "--backend", b, "--repeats", str(cfg.decode_repeats))
                except (OSError, RuntimeError, ValueError) as e:
                    r = {"backend": b, "error": str(e)}
                rows.append({"fps": fps, **r})
    return rows


def _summary_int(rows: dict[str, str], key: str, pattern: str) -> int | None:
    m = re.search(pattern, rows.get(key, ""))
    return int(m.group(1)) if m else None


def _summary_ms(rows: dict[str, str], key: str) -> float | None:
    m = re.match(r"([\d.]+) ms/item", rows.get(key, ""))
    return float(m.group(1)) if m else None


def _timing_lists(lines: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each numeric field of the runtime's per-frame `timings` (--timings) over these lines."""
    out: dict[str, list[float]] = {}
    for d in lines:
        for k, v in (d.get("timings") or {}).items():
            if isinstance(v, (int, float)):
                out.setdefault(k, []).append(float(v))
    return out


def lag_ms(stamps: list[tuple[float, int | None]], fps: int) -> list[float]:
    """Each label's lateness against the camera's clock, over the fastest frame's: frame i leaves the
    camera at start + i/fps, so t_label(i) - i/fps is its glass-to-label time plus one constant;
    subtracting the smallest leaves what queueing and stalls added (0 for the fastest frame). Needs
    nothing from the runtime; a camera starved of CPU also shows up here."""
    late = [t - i / fps for t, i in stamps if i is not None]
    return [1000.0 * (x - min(late)) for x in late] if late else []


def measure_cell(cfg: LiveBenchConfig, backend: str, fps: int, images: list[Path], timings: bool,
                 log: Log) -> dict[str, Any]:
    cell: dict[str, Any] = {"backend": backend, "fps": fps}
    try:
        cam = Camera(cfg, images, fps)
    except RuntimeError as e:
        return {**cell, "error": str(e)}
    try:
        source = cam.url if backend == "ffmpeg" else GST_SOURCE.format(url=cam.url)
        rt = Runtime(cfg.pythons[backend], source, cfg.model, timings, cfg.env)
        try:
            deadline = time.perf_counter() + FIRST_FRAME_S
            while not rt.lines and rt.p.poll() is None and time.perf_counter() < deadline:
                time.sleep(0.05)
            if not rt.lines or "error" in rt.lines[0][1]:
                ended = rt.p.poll()
                rt.stop()
                last = rt.lines[0][1].get("error") if rt.lines else None
                why = last or next((e.strip() for e in reversed(rt.err) if e.strip()), "no frame, no message")
                when = f"the runtime exited (code {ended}) before its first label" if ended is not None \
                    else f"no frame classified within {FIRST_FRAME_S:.0f} s"
                cell["error"] = f"{when}: {why}"
                return cell  # the finally blocks add the runtime's exit and the camera's count
            time.sleep(max(0.0, rt.lines[0][0] + cfg.warmup_s - time.perf_counter()))
            sampler = Sampler({"runtime": rt.p.pid, "camera": cam.p.pid, "bench": os.getpid()})
            n_a, t_a = len(rt.lines), time.perf_counter()
            while time.perf_counter() - t_a < cfg.seconds and rt.p.poll() is None:
                time.sleep(0.1)
            n_b = len(rt.lines)
            if rt.p.poll() is not None:  # it ended by itself inside the window: say so beside its figures
                cell["ended_early"] = next((e.strip() for e in reversed(rt.err) if e.strip()), f"exit {rt.p.poll()}")
            cell["usage"] = sampler.finish()
        finally:
            cell["runtime_exit"] = rt.stop()
    finally:
        cell["sent"] = cam.stop()
    lines = list(rt.lines)
    good = [(t, d) for t, d in lines if "error" not in d]
    idx = [frame_index(d.get("source", "")) for _, d in good]
    (t0, d0), (t1, d1) = lines[n_a - 1], lines[n_b - 1]
    i0, i1 = frame_index(d0.get("source", "")), frame_index(d1.get("source", ""))
    span = t1 - t0
    win = [d for _, d in lines[n_a:n_b]]
    ages = [a for a in (age_ms(d.get("timings")) for d in win) if a is not None]
    lag = lag_ms([(t, frame_index(d.get("source", ""))) for t, d in lines[n_a:n_b]], fps)
    rows = rt.summary()
    cell.update({
        "classified": len(good), "errors": len(lines) - len(good),
        "read": max((i for i in idx if i is not None), default=-1) + 1,
        "dropped": _summary_int(rows, "items", r"(\d+) dropped") or 0 if "items" in rows else None,
        "window": {"seconds": span, "camera_frames": (i1 - i0) if i0 is not None and i1 is not None else None,
                   "classified": n_b - n_a},
        "age_ms": {"p50": pct(ages, 0.5), "p99": pct(ages, 0.99), "n": len(ages), "source": "--timings"}
        if ages else {"p50": None, "p99": None, "n": 0, "source": "the runtime has no --timings"},
        "lag_ms": {"p50": pct(lag, 0.5), "p99": pct(lag, 0.99), "max": max(lag, default=None)},
        "timings_ms": {k: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for k, v in _timing_lists(win).items()},
        "stage_ms": {k: _summary_ms(rows, k) for k in ("capture wait", "decode", "preprocess", "inference")},
        "summary_frame_age": rows.get("frame age")})
    w = cell["window"]
    w["camera_fps"] = w["camera_frames"] / span if w["camera_frames"] and span > 0 else None
    w["classified_per_s"] = w["classified"] / span if span > 0 else None
    w["dropped"] = w["camera_frames"] - w["classified"] if w["camera_frames"] is not None else None
    cell["dropped_before_window"] = (i0 + 1 - n_a) if i0 is not None else None  # start-up: read, never classified
    cell["not_read"] = cell["sent"] - cell["read"] if cell["sent"] is not None else None
    cell["classified_of_sent"] = cell["classified"] / cell["sent"] if cell["sent"] else None
    cell["classified_of_window"] = (w["classified"] / w["camera_frames"]) if w["camera_frames"] else None
    return cell


def git_head() -> str | None:
    """The commit the benchmark (and an editable runtime) ran from, '+dirty' with local changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_live_bench(cfg: LiveBenchConfig, log: Log) -> dict[str, Any]:
    from catdog.benchmarks.common.env import cpu_info, ram_gb
    from catdog.benchmarks.live.report import render, target_rows
    from catdog.runtime.spine.reports import write_report_pair

    images = list_images(cfg.photos)[:6]
    if not images:
        raise InputError(f"{cfg.photos}: no photos; give a folder of JPEG/PNG photos for the camera to show")
    cam = _probe(cfg.camera_python)
    if not cam or not cam.get("rtsp_server") or not (cam.get("opencv") or {}).get("version"):
        raise InputError(f"the RTSP camera needs {cfg.camera_python} with PyGObject, GStreamer's RTSP server, x264 "
                         "and OpenCV: apt install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly "
                         "gstreamer1.0-plugins-good gstreamer1.0-libav python3-opencv (or pass --camera-python)")
    probes = {b: _probe(cfg.pythons.get(b)) for b in cfg.backends}
    missing = {b: unavailable(b, probes[b], cfg.pythons.get(b)) for b in cfg.backends}
    for line in filter(None, missing.values()):
        log(f"unavailable: {line}")
    decode_ok = {b: bool(probes[b] and (probes[b].get("opencv") or {}).get(b)) for b in cfg.backends}
    runnable = [b for b in cfg.backends if not missing[b]]
    if not runnable and not any(decode_ok.values()):
        raise InputError("no backend can run: " + "; ".join(filter(None, missing.values())))
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    decode = decode_alone(cfg, images, decode_ok, log)
    timings = {b: has_timings(cfg.pythons[b]) for b in runnable}
    cells = []
    for fps in cfg.fps:
        for b in runnable:
            log(f"live: {b} at {fps} fps, {cfg.seconds:g} s after a {cfg.warmup_s:g} s warm-up")
            cells.append(measure_cell(cfg, b, fps, images, timings[b], log))
    data = {"command": cfg.command, "commit": git_head(), "cpu": cpu_info(), "ram_gb": ram_gb(), "camera": cam,
            "size": f"{cfg.size[0]}x{cfg.size[1]}", "frames_per_image": cfg.frames_per_image,
            "seconds": cfg.seconds, "warmup_s": cfg.warmup_s, "model": str(cfg.model) if cfg.model else "shipped",
            "backends": [{"backend": b, "python": cfg.pythons.get(b), "probe": probes[b], "unavailable": missing[b],
                          "timings": timings.get(b)} for b in cfg.backends],
            "decode": decode, "cells": cells, "photos": [p.name for p in images]}
    data["targets"] = target_rows(data)
    write_report_pair(cfg.out_dir, "report", data, render(data), sort_keys=False)
    return data

