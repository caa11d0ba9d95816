"""The latency grid: every artifact × provider × thread count × batch size, interleaved per group.

Conventions follow onnxruntime_perf_test and OpenVINO benchmark_app: warm-up runs are discarded;
each timed sample is one synchronous run of one batch; we report p50/p90/p99, mean ± std, min/max
and throughput = images / total timed seconds (= batch / mean latency).

Like with like: a group is (provider, threads); its sessions are created once (session-creation time
and the first inference are recorded), then for each batch size all artifacts get the same input
tensor and run interleaved in round-robin blocks (A×k, B×k, C×k, A×k, ...) so that frequency
scaling, thermal drift and noisy neighbours hit all artifacts equally instead of whichever ran last."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from catdog.benchmarks.common.config import LoopConfig, Progress
from catdog.benchmarks.common.schema import LatencyRow
from catdog.benchmarks.common.timing import interleaved, latency_stats
from catdog.benchmarks.grid.artifacts import Artifact, make_batch, ort_has, uses_threads
from catdog.benchmarks.grid.runners import DEFAULT_GPU, GpuSettings, Runner, make_runner, why_not
from catdog.runtime.engine.session import PROVIDERS
from catdog.runtime.spine.errors import ModelError, error_line
from catdog.runtime.spine.spec import PreprocessSpec


@dataclass(frozen=True)
class Grid:
    providers: tuple[str, ...]
    batches: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int | None, ...] = (None,)  # None: onnxruntime's default (all cores)
    loop: LoopConfig = LoopConfig()
    gpu: GpuSettings = DEFAULT_GPU

    def groups(self) -> list[tuple[str, int | None]]:
        """(provider, threads) pairs: thread counts for CPU, one default entry for GPU providers."""
        return [(p, t) for p in self.providers for t in (self.threads if uses_threads(p) else (None,))]


def _first_runs(runners: list[Runner], images: list[np.ndarray], spec: PreprocessSpec, batch: int) -> dict[str, float]:
    out = {}
    for r in runners:
        x = make_batch(r.artifact, images[: r.artifact.fixed_batch or batch], spec)
        t0 = time.perf_counter()
        try:
            r.run(x)
        except Exception as e:  # noqa: BLE001 - the first run is where a graph that cannot take our input says so
            raise ModelError(f"{r.artifact.path}: first inference on {r.provider} failed "
                             f"({error_line(e, 200)})") from None
        out[r.artifact.name] = time.perf_counter() - t0
    return out


def _not_run(arts: list[Artifact], runnable: list[Artifact], provider: str, threads: int | None,
             batches: tuple[int, ...]) -> list[LatencyRow]:
    rows = []
    for a in arts:
        if a in runnable:
            continue
        why = why_not(a, provider)
        if why is None:  # an ONNX artifact, cuda offered by torch alone: say which ORT-GPU figures are missing
            status = "missing"
            note = f"this onnxruntime has no {PROVIDERS[provider]}; install onnxruntime-gpu to measure it"
        else:
            status, note = "n/a", why
        rows += [LatencyRow(provider, threads, a.name, b, status, note) for b in batches]
    return rows


def batch_sets(provider: str, batches: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The batch sizes each set of sessions serves. TensorRT: one engine per batch size, built for
    exactly that batch before its rows are timed (an engine spanning 1..32 is tuned for one of
    them); other providers: one session per artifact for every batch size."""
    return [(b,) for b in batches] if provider == "tensorrt" else [batches]


def _timed_rows(runners: list[Runner], first: dict[str, float], b: int, grid: Grid, images: list[np.ndarray],
                spec: PreprocessSpec, progress: Progress | None) -> list[LatencyRow]:
    """Every runner at batch b, interleaved (the group's runners share provider and threads)."""
    provider, threads = runners[0].provider, runners[0].threads
    ok = [r for r in runners if r.artifact.fixed_batch in (None, b)]
    rows = [LatencyRow(provider, threads, r.artifact.name, b, "skipped",
                       f"graph has a fixed batch of {r.artifact.fixed_batch}") for r in runners if r not in ok]
    if not ok:
        return rows
    inputs = {r.artifact.name: make_batch(r.artifact, images[:b], spec) for r in ok}
    fns = {r.artifact.name: (lambda r=r, x=inputs[r.artifact.name]: r.run(x)) for r in ok}
    label = f"{provider} threads={threads or 'default'} batch={b}"
    loop = grid.loop
    if progress:
        progress(label, 0, (loop.iters + loop.warmup) * len(ok) if loop.iters else None)
        if loop.warmup:
            progress(label, loop.warmup * len(ok), None)
    cb = (lambda _name, k: progress(label, k, None)) if progress else None
    samples = interleaved(fns, loop, cb)
    for r in ok:
        name = r.artifact.name
        rows.append(LatencyRow(provider, threads, name, b, "ok", create_s=r.create_s,
                               first_run_ms=first.get(name, float("nan")) * 1e3,
                               stats=latency_stats(samples[name], b)))
    return rows


def _group(arts: list[Artifact], provider: str, threads: int | None, grid: Grid, images: list[np.ndarray],
           spec: PreprocessSpec, progress: Progress | None) -> list[LatencyRow]:
    ort_ok = ort_has(provider)
    runnable = [a for a in arts if why_not(a, provider) is None and (a.kind != "onnx" or ort_ok)]
    rows = _not_run(arts, runnable, provider, threads, grid.batches)
    for batches in batch_sets(provider, grid.batches):
        runners = [make_runner(a, provider, threads, grid.gpu, batches) for a in runnable]
        if not runners:
            continue
        first = _first_runs(runners, images, spec, min(batches))
        for b in batches:
            rows += _timed_rows(runners, first, b, grid, images, spec, progress)
    return rows


def run_grid(arts: list[Artifact], grid: Grid, images: list[np.ndarray], spec: PreprocessSpec,
             progress: Progress | None = None) -> list[LatencyRow]:
    """All latency rows. Images must number at least max(batches)."""
    if len(images) < max(grid.batches):
        raise ValueError("need at least max(batches) images")
    rows: list[LatencyRow] = []
    for provider, threads in grid.groups():
        rows += _group(arts, provider, threads, grid, images, spec, progress)
    return rows


def add_efficiency(rows: list[LatencyRow], gflops: dict[str, float | None],
                   peaks: dict[tuple[str, int | None], float | None]) -> list[LatencyRow]:
    """Achieved GFLOP/s = model GFLOPs per image × images/s, and its % of the measured peak."""
    out = []
    for row in rows:
        if row.stats is not None:
            g = gflops.get(row.artifact)
            peak = peaks.get((row.provider, row.threads))
            achieved = g * row.stats.throughput_ips if g else None
            pct = 100.0 * achieved / peak if achieved and peak else None
            row = replace(row, achieved_gflops=achieved, pct_peak=pct)
        out.append(row)
    return out
