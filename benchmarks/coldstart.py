"""Cold start: a fresh process from exec to its first label, and that process's peak RSS.

Each command runs `runs` times; we report the median of time-to-first-label (the first stdout line
carrying the label), of time-to-exit, and of peak RSS. os.wait4's rusage
cannot be used: Linux carries the forking parent's high-water mark across fork/exec into the child's
ru_maxrss. Peak RSS is the child's VmHWM (/proc/PID/status: the high-water mark of its own, post-exec
address space), read every few ms while it runs, so only growth in its last few ms could be missed;
without /proc (macOS), psutil's RSS is polled instead. Compared: the runtime CLI
(`python -m catdog.runtime IMG --model M --json`), the bare onnxruntime script (bare_ort.py), and a
torch pipeline (bare_torch.py on model.ts or the checkpoint) when torch is installed."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from catdog.runtime.errors import InputError

from catdog.benchmarks.latency import ratio

HERE = Path(__file__).parent


def _peak_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss // 1024
    except Exception:  # gone, or psutil absent
        return None


class _RssWatch(threading.Thread):
    """Polls a child's peak RSS until told to stop (the child exiting ends the readings)."""

    def __init__(self, pid: int, every_s: float = 0.003):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_kb, self.done = pid, every_s, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            kb = _peak_rss_kb(self.pid)
            if kb:
                self.peak_kb = max(self.peak_kb, kb)
            time.sleep(self.every_s)


def run_once(cmd: list[str], marker: str | None = None, timeout: float = 120.0,
             write_bytecode: bool = False) -> dict[str, Any]:
    """Start `cmd`; time to the first stdout line containing `marker` (any line if None), time to
    exit, and the child's peak RSS in MB. Timed runs write no bytecode; `write_bytecode` is for the
    warm-up run that fills __pycache__ as any user's first run (or pip install) does."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch = _RssWatch(p.pid)
    watch.start()
    first, lines = None, []
    assert p.stdout is not None
    for line in p.stdout:  # stdout closes when the child exits
        lines.append(line)
        if first is None and line.strip() and (marker is None or marker in line):
            first = time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            p.kill()
            break
    p.wait()
    exit_s = time.perf_counter() - t0
    watch.done.set()
    watch.join()
    err = p.stderr.read() if p.stderr else ""
    if p.returncode != 0 or first is None:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"cold-start command failed ({' '.join(cmd[:4])} ...): exit {p.returncode}: {last[:200]}")
    rss_mb = watch.peak_kb / 1024 if watch.peak_kb else None
    return {"first_label_s": first, "exit_s": exit_s, "peak_rss_mb": rss_mb, "output": "".join(lines).strip()}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over fresh processes (plus min/max of time to first label)."""
    firsts = [r["first_label_s"] for r in results]
    return {
        "runs": len(results),
        "first_label_s": statistics.median(firsts),
        "first_label_min_s": min(firsts),
        "first_label_max_s": max(firsts),
        "exit_s": statistics.median(r["exit_s"] for r in results),
        "peak_rss_mb": None if any(r["peak_rss_mb"] is None for r in results)
        else statistics.median(r["peak_rss_mb"] for r in results),
        "output": results[0]["output"].splitlines()[0][:120],
    }


def commands(model: Path, image: Path, torch_model: Path | None) -> dict[str, tuple[list[str], str | None]]:
    """name -> (command, marker of the first-label line)."""
    py = sys.executable
    out = {
        "runtime CLI": ([py, "-m", "catdog.runtime", str(image), "--model", str(model), "--provider", "cpu", "--json"], '"label"'),
        "bare onnxruntime script": ([py, str(HERE / "bare_ort.py"), str(model), str(image)], None),
    }
    if torch_model is not None:
        out["torch pipeline"] = ([py, str(HERE / "bare_torch.py"), str(torch_model), str(image)], None)
    return out


def coldstart_section(primary: Any, arts: list, cfg: Any, log: Callable[[str], None]) -> dict[str, Any]:
    from catdog.benchmarks.bench import torch_available

    if cfg.data is not None:
        from catdog.benchmarks.labels import labeled_images

        image = labeled_images(cfg.data, limit=1)[0][0]
    else:
        image = cfg.out_dir / "coldstart-input.jpg"  # the same fixed-seed image every artifact saw
        import cv2

        from catdog.benchmarks.artifacts import synthetic_image
        from catdog.runtime.files import atomic_path

        with atomic_path(image) as tmp:
            ok, buf = cv2.imencode(".jpg", synthetic_image(0))
            tmp.write_bytes(buf.tobytes())
    torch_model = None
    if torch_available():
        torch_model = next((a.path for a in arts if a.kind == "torchscript"), None) or cfg.torch_ckpt
    cmds = commands(primary.path, image, torch_model)
    log(f"cold start: {', '.join(cmds)}, interleaved x{cfg.coldstart_runs}")
    for cmd, marker in cmds.values():
        # Untimed: page cache, and the bytecode cache that an installed package has (pip compiles
        # it) but a source checkout under PYTHONDONTWRITEBYTECODE=1 never gets (+25 ms of compile).
        run_once(cmd, marker, write_bytecode=True)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in cmds}
    for _ in range(cfg.coldstart_runs):  # interleaved: a slow spell of the machine hits every contender
        for name, (cmd, marker) in cmds.items():
            results[name].append(run_once(cmd, marker))
    rows = [{"pipeline": name, **summarize(res)} for name, res in results.items()]
    base = next(r for r in rows if r["pipeline"] == "bare onnxruntime script")
    for r in rows:
        r["vs_bare_time"] = r["first_label_s"] / base["first_label_s"]
        r["vs_bare_rss"] = ratio(r["peak_rss_mb"], base["peak_rss_mb"])
    return {"about": f"Fresh process -> first label for {image.name} with {primary.path.name}, median of "
                     f"{cfg.coldstart_runs} interleaved runs; peak RSS = the child's VmHWM. vs_bare = ratio to the bare onnxruntime script.",
            "image": str(image), "rows": rows}
