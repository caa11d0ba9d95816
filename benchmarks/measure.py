"""The latency grid: every artifact × provider × thread count × batch size, interleaved per group.

A group is (provider, threads): its sessions are created once (session-creation time and the first
inference are recorded), then for each batch size all artifacts run interleaved on the same input."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from catdog.runtime.errors import ModelError
from catdog.runtime.spec import PreprocessSpec

from catdog.benchmarks.artifacts import Artifact, make_batch
from catdog.benchmarks.backends import PROVIDERS, Runner, applies, make_runner, ort_has
from catdog.benchmarks.latency import LoopConfig, interleaved, latency_stats

Progress = Callable[[str, int, int | None], None]  # (description, advance, new total or None)


@dataclass(frozen=True)
class Grid:
    providers: tuple[str, ...]
    batches: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int | None, ...] = (None,)  # None: onnxruntime's default (all cores)
    loop: LoopConfig = LoopConfig()


def _first_runs(runners: list[Runner], images: list[np.ndarray], spec: PreprocessSpec, batch: int) -> dict[str, float]:
    out = {}
    for r in runners:
        x = make_batch(r.artifact, images[: r.artifact.fixed_batch or batch], spec)
        t0 = time.perf_counter()
        try:
            r.run(x)
        except Exception as e:  # the first run is where a graph that cannot take our input says so
            raise ModelError(f"{r.artifact.path}: first inference on {r.provider} failed "
                             f"({str(e).strip().splitlines()[0][:200]})") from None
        out[r.artifact.name] = time.perf_counter() - t0
    return out


def _group(arts: list[Artifact], provider: str, threads: int | None, grid: Grid, images: list[np.ndarray],
           spec: PreprocessSpec, progress: Progress | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = {"provider": provider, "threads": threads}
    ort_ok = ort_has(provider)
    runnable = [a for a in arts if applies(a, provider) and (a.kind != "onnx" or ort_ok)]
    runners = [make_runner(a, provider, threads) for a in runnable]
    for a in arts:
        if a in runnable:
            continue
        if a.kind == "onnx":  # cuda offered by torch alone: say which ORT-GPU figures are missing
            status, note = "missing", f"this onnxruntime has no {PROVIDERS[provider].ort}; install onnxruntime-gpu to measure it"
        else:
            status, note = "n/a", f"{a.name} does not run on {provider}"
        rows += [{**base, "artifact": a.name, "batch": b, "status": status, "note": note} for b in grid.batches]
    first = _first_runs(runners, images, spec, min(grid.batches))
    for b in grid.batches:
        ok = [r for r in runners if r.artifact.fixed_batch in (None, b)]
        for r in runners:
            if r not in ok:
                rows.append({**base, "artifact": r.artifact.name, "batch": b, "status": "skipped",
                             "note": f"graph has a fixed batch of {r.artifact.fixed_batch}"})
        if not ok:
            continue
        inputs = {r.artifact.name: make_batch(r.artifact, images[:b], spec) for r in ok}
        fns = {r.artifact.name: (lambda r=r, x=inputs[r.artifact.name]: r.run(x)) for r in ok}
        label = f"{provider} threads={threads or 'default'} batch={b}"
        cfg = grid.loop
        if progress:
            total = (cfg.iters + cfg.warmup) * len(ok) if cfg.iters else None
            progress(label, 0, total)
        cb = (lambda name, k: progress(label, k, None)) if progress else None
        if progress and cfg.warmup:
            progress(label, cfg.warmup * len(ok), None)
        samples = interleaved(fns, cfg, cb)
        for r in ok:
            name = r.artifact.name
            rows.append({**base, "artifact": name, "batch": b, "status": "ok",
                         "create_s": r.create_s, "first_run_ms": first.get(name, float("nan")) * 1e3,
                         **latency_stats(samples[name], b)})
    return rows


def run_grid(arts: list[Artifact], grid: Grid, images: list[np.ndarray], spec: PreprocessSpec,
             progress: Progress | None = None) -> list[dict[str, Any]]:
    """All latency rows. Images must number at least max(batches)."""
    if len(images) < max(grid.batches):
        raise ValueError("need at least max(batches) images")
    rows: list[dict[str, Any]] = []
    for provider in grid.providers:
        thread_list = grid.threads if PROVIDERS[provider].uses_threads else (None,)
        for t in thread_list:
            rows += _group(arts, provider, t, grid, images, spec, progress)
    return rows


def add_efficiency(rows: list[dict[str, Any]], gflops: dict[str, float | None],
                   peaks: dict[tuple[str, int | None], float | None]) -> None:
    """Achieved GFLOP/s = model GFLOPs per image × images/s, and its % of the measured peak."""
    for row in rows:
        if row.get("status") != "ok":
            continue
        g = gflops.get(row["artifact"])
        peak = peaks.get((row["provider"], row["threads"]))
        achieved = g * row["throughput_ips"] if g else None
        row["achieved_gflops"] = achieved
        row["pct_peak"] = 100.0 * achieved / peak if achieved and peak else None
