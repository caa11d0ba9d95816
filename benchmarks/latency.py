"""Latency statistics and the interleaved measurement loop.

Conventions follow onnxruntime_perf_test and OpenVINO benchmark_app: warm-up runs are discarded;
each timed sample is one synchronous run of one batch; we report p50/p90/p99, mean ± std, min/max
and throughput = images / total timed seconds (= batch / mean latency).

Like with like: every runner in a group gets the same input tensor and the same thread count, and
runs are interleaved in round-robin blocks (A×k, B×k, C×k, A×k, ...) so that frequency scaling,
thermal drift and noisy neighbours hit all artifacts equally instead of whichever ran last."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

PERCENTILES = (50, 90, 99)


def latency_stats(samples_s: Sequence[float], batch: int) -> dict[str, Any]:
    """Seconds per batch -> milliseconds statistics and images/s."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p99 = np.percentile(ms, PERCENTILES)
    total_s = float(ms.sum()) / 1e3
    return {
        "n": int(ms.size),
        "batch": batch,
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "throughput_ips": batch * ms.size / total_s,
        "throughput_p50_ips": batch / (float(p50) / 1e3),
    }


@dataclass(frozen=True)
class LoopConfig:
    warmup: int = 5
    iters: int | None = 50  # timed runs per runner; None -> run for `seconds`
    seconds: float | None = None  # timed seconds per runner
    block: int = 5  # runs per runner before switching to the next one

    def __post_init__(self) -> None:
        if (self.iters is None) == (self.seconds is None):
            raise ValueError("give exactly one of iters or seconds")
        if self.warmup < 0 or self.block < 1 or (self.iters is not None and self.iters < 1):
            raise ValueError("warmup >= 0, block >= 1, iters >= 1")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError("seconds must be > 0")


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
