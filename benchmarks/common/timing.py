"""How a benchmark times anything: interleaved round-robin blocks after discarded warm-up runs, the
latency statistics of the samples (p50/p90/p99, mean ± std, min/max, images/s), and ratios between
numbers that may be missing. Every command's measurements use it: the latency grid (grid/measure.py),
the in-process sections, int8, and scripts/backbone_latency.py.

Conventions follow onnxruntime_perf_test and OpenVINO benchmark_app: warm-up runs are discarded;
each timed sample is one synchronous run; throughput = images / total timed seconds."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from catdog.benchmarks.common.config import LoopConfig
from catdog.benchmarks.common.schema import LatencyStats

PERCENTILES = (50, 90, 99)


def latency_stats(samples_s: Sequence[float], batch: int) -> LatencyStats:
    """Seconds per batch -> milliseconds statistics and images/s."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p99 = np.percentile(ms, PERCENTILES)
    total_s = float(ms.sum()) / 1e3
    return LatencyStats(
        n=int(ms.size), batch=batch, p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
        mean_ms=float(ms.mean()), std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        min_ms=float(ms.min()), max_ms=float(ms.max()),
        throughput_ips=batch * ms.size / total_s, throughput_p50_ips=batch / (float(p50) / 1e3),
    )


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(
    fns: dict[str, Callable[[], Any]],
    cfg: LoopConfig,
    on_block: Callable[[str, int], None] | None = None,
) -> dict[str, list[float]]:
    """Run each zero-argument callable (one synchronous inference each) `cfg.warmup` times, then
    in round-robin blocks until each has `cfg.iters` samples (or `cfg.seconds` of timed work).
    Returns seconds per call, by name. `on_block(name, runs)` reports progress."""
    names = list(fns)
    for name in names:  # warm-up: allocations, kernel selection, caches; discarded
        for _ in range(cfg.warmup):
            fns[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    spent: dict[str, float] = {n: 0.0 for n in names}

    def done(name: str) -> bool:
        if cfg.iters is not None:
            return len(samples[name]) >= cfg.iters
        return spent[name] >= cfg.seconds and len(samples[name]) >= 2

    while not all(done(n) for n in names):
        for name in names:
            if done(name):
                continue
            k = cfg.block if cfg.iters is None else min(cfg.block, cfg.iters - len(samples[name]))
            fn = fns[name]
            for _ in range(k):
                dt = _timed(fn)
                samples[name].append(dt)
                spent[name] += dt
            if on_block:
                on_block(name, k)
    return samples


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b when both are positive numbers, else None (a ratio of missing numbers is missing)."""
    if a is None or b is None or b <= 0:
        return None
    return a / b
