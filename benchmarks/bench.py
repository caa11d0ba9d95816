"""`catdog-bench run`: discover artifacts, measure the grid, add the optional sections, write the
report folder. The CLI builds a BenchConfig; this module does the work and knows nothing of typer."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from catdog.runtime.files import check_writable_dir

from catdog.benchmarks import flops as flops_mod
from catdog.benchmarks.artifacts import discover, input_images, spec_of
from catdog.benchmarks.backends import PROVIDERS
from catdog.benchmarks.env import collect_env
from catdog.benchmarks.latency import LoopConfig
from catdog.benchmarks.measure import Grid, add_efficiency, run_grid
from catdog.benchmarks.peak import measure_peak
from catdog.benchmarks.report import compute_ratios, write_report

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[Path, ...]
    out_dir: Path
    name: str
    providers: tuple[str, ...]
    batches: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int | None, ...] = (None,)
    loop: LoopConfig = LoopConfig()
    data: Path | None = None
    video: Path | None = None
    torch_ckpt: Path | None = None
    accuracy_limit: int | None = 200  # images for accuracy/agreement (None: all)
    coldstart_runs: int = 5
    peak: bool = True
    command: str = "catdog-bench run"
    extras: tuple[str, ...] = field(default=("accuracy", "coldstart", "folder", "pipeline"))


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _artifact_rows(arts: list, log: Log) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    rows, gflops = [], {}
    for a in arts:
        counted = flops_mod.count(a.path, a.size) if a.kind == "onnx" else None
        size = a.path.stat().st_size
        rows.append({
            "name": a.name, "path": str(a.path), "kind": a.kind,
            "precision": a.meta.precision if a.meta else ("fp16" if a.input_dtype == "float16" else "fp32"),
            "input_format": "uint8" if a.uint8_input else "float", "input_size": a.size,
            "arch": a.meta.arch if a.meta else None, "classes": list(a.meta.classes) if a.meta else None,
            "size_bytes": size, "size_mb": size / 1e6,
            "sha256": hashlib.sha256(a.path.read_bytes()).hexdigest(),
            "params": counted["params"] if counted else None,
            "gflops": counted["gflops"] if counted else None,
        })
        gflops[a.name] = counted["gflops"] if counted else None
    # torch artifacts compute what the fp32 graph computes: reuse its count for % of peak
    ref = next((r for r in rows if r["name"] == "onnx-fp32" and r["gflops"]), None)
    for r in rows:
        if r["kind"] != "onnx" and ref:
            r["gflops"], r["params"] = ref["gflops"], ref["params"]
            gflops[r["name"]] = ref["gflops"]
    if not flops_mod.onnx_available():
        log("onnx is not installed: parameter count and GFLOPs are n/a")
    return rows, gflops


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _peaks(groups: list[tuple[str, int | None]]) -> dict[tuple[str, int | None], dict[str, Any]]:
    return {g: measure_peak(g[0], g[1]) for g in groups}


def run_benchmark(cfg: BenchConfig, log: Log = print, progress: Any = None) -> dict[str, Any]:
    notes: list[str] = []
    arts, left_out = discover(list(cfg.models), cfg.torch_ckpt, torch_ok=torch_available(),
                              amp=cfg.torch_ckpt is not None and "cuda" in cfg.providers)
    check_writable_dir(cfg.out_dir)  # before the long work, after the inputs proved readable
    notes += left_out
    spec = spec_of(arts)
    images, input_desc = input_images(cfg.data, max(cfg.batches))
    log(f"{len(arts)} artifacts: {', '.join(a.name for a in arts)}; providers {', '.join(cfg.providers)}")
    env = collect_env()
    art_rows, gflops = _artifact_rows(arts, log)

    grid = Grid(cfg.providers, cfg.batches, cfg.threads, cfg.loop)
    groups = [(p, t) for p in cfg.providers for t in (cfg.threads if PROVIDERS[p].uses_threads else (None,))]
    load_before = _load()
    peaks = _peaks(groups) if cfg.peak else {}
    t0 = time.perf_counter()
    rows = run_grid(arts, grid, images, spec, progress)
    log(f"latency grid done in {time.perf_counter() - t0:.1f} s")
    if cfg.peak:  # best of before and after the grid: a busy neighbour only ever lowers a peak
        for key, p in _peaks(groups).items():
            if (p["gflops"] or 0) > (peaks[key]["gflops"] or 0):
                peaks[key] = p
    add_efficiency(rows, gflops, {k: p["gflops"] for k, p in peaks.items()})
    missing = sorted({f"{r['artifact']} on {r['provider']}" for r in rows if r["status"] == "missing"})
    if missing:
        notes.append("ORT-GPU figures still missing (this onnxruntime has no GPU provider; torch rows ran on the GPU): "
                     + ", ".join(missing))
    load_after = _load()
    busy = load_before or 0.0  # before our own runs: afterwards the average counts us too
    if busy > 0.75 * (env["cores_usable"] or 1):
        notes.append(f"the machine was busy (load average {busy:.1f} on {env['cores_usable']} usable cores): "
                     "absolute numbers are noisy; interleaving keeps the ratios fair")

    report: dict[str, Any] = {
        "name": cfg.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": cfg.command,
        "env": env,
        "config": {"providers": list(cfg.providers), "batches": list(cfg.batches),
                   "threads": list(cfg.threads), "warmup": cfg.loop.warmup, "iters": cfg.loop.iters,
                   "seconds": cfg.loop.seconds, "block": cfg.loop.block, "input": input_desc,
                   "spec": spec.to_dict()},
        "artifacts": art_rows,
        "latency": rows,
        "peak": list(peaks.values()),
        "load_average": {"before": load_before, "after": load_after},
        "ratios": compute_ratios(rows),
        "notes": notes,
    }
    from catdog.benchmarks import extras

    extras.add_sections(report, cfg, arts, spec, log)
    from catdog.benchmarks.plots import make_charts

    report["charts"] = make_charts(report, cfg.out_dir)
    write_report(report, cfg.out_dir)
    return report
