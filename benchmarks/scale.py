"""`catdog-bench scale`: images/s of `catdog-runtime --ray` (a local Ray, 1, 2, ... actors) against the
single-process runtime on the same inputs and model, in interleaved rounds, written as a catdog-bench
report (report.json / report.md) with a "scale" section. Start-up is reported apart from the steady
state: Ray's own start, then the actor pool's first result; the single process's model load, then
its first batch. Steady state = images after each worker's first result over the time they took."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catdog.benchmarks.common.config import Log, ScaleConfig
from catdog.benchmarks.common.schema import Report, RunSettings, ScaleRow, Section
from catdog.benchmarks.run.contenders import folder_classifier

SINGLE = "catdog-runtime, one process (batch 16, 2 decode thr)"  # as the CLI runs files, ORT's default threads
# The same with one onnxruntime thread, as each actor runs: what Ray itself costs, without the
# difference between one session on every core and single-threaded sessions side by side.
SINGLE_T1 = "catdog-runtime --threads 1, one process"


@dataclass(frozen=True)
class Measured:
    startup_s: float  # Ray start / model load
    first_result_s: float | None  # after start-up: the pool's (or pipeline's) first result
    steady_ips: float | None
    overall_ips: float  # all images over start-up + run
    images: int


def single_process(sources: list[str], model: Path, threads: int | None = None) -> Measured:
    t0 = time.perf_counter()
    clf = folder_classifier(model, threads)
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    first, n = None, 0
    for _ in clf.iter_predict(sources):
        n += 1
        if n == clf.batch_size:  # the first batch is out: the pipeline is full
            first = time.perf_counter()
    end = time.perf_counter()
    steady = (n - clf.batch_size) / (end - first) if first and end > first else None
    return Measured(load, (first - t1) if first else None, steady, n / (end - t0), n)


def on_ray(cfg: ScaleConfig, actors: int, out: Path) -> tuple[Measured, Any]:
    from catdog.runtime.options import RunOptions
    from catdog.runtime.run import scale_options
    from catdog.runtime.scale.driver import execute

    o = RunOptions(source=cfg.inputs, model=cfg.model, ray="local", out=out, actors=actors, threads=cfg.threads)
    r = execute(scale_options(o))
    overall = r.rows / (r.ray_start_s + r.run_s)
    return Measured(r.ray_start_s, r.first_result_s, r.steady_ips(), overall, r.rows), r.plan


def _median(vals: list[float | None]) -> float | None:
    got = [v for v in vals if v is not None]
    return statistics.median(got) if got else None


def _rows(results: dict[str, list[Measured]], plans: dict[str, Any]) -> list[ScaleRow]:
    single = _median([m.steady_ips for m in results[SINGLE]])
    one = next((k for k, p in plans.items() if p.actors == 1), None)
    one_ips = _median([m.steady_ips for m in results[one]]) if one else None
    rows = []
    for name, runs in ((k, v) for k, v in results.items() if v):
        plan = plans.get(name)
        steady = _median([m.steady_ips for m in runs])
        eff = steady / (plan.actors * one_ips) if plan and one_ips and steady else None
        threads = plan.threads if plan else (1 if name == SINGLE_T1 else None)
        rows.append(ScaleRow(
            name, plan.actors if plan else None, threads, runs[0].images, len(runs),
            _median([m.startup_s for m in runs]), _median([m.first_result_s for m in runs]), steady,
            _median([m.overall_ips for m in runs]), steady / single if steady and single else None, eff))
    return rows


def load_note(before: float | None, after: float | None, cores: int | None) -> str:
    """The load average around the runs. Only `before` says whether others were busy: `after` counts
    this benchmark's own processes."""
    note = f"load average {before or 0:.2f} before, {after or 0:.2f} after the runs (ours included) on {cores} cores"
    if (before or 0) > 0.75 * (cores or 1):
        note += "; the machine was busy before they started: absolute figures are noisy, interleaving keeps " \
                "ratios fairer"
    return note


def run_scale(cfg: ScaleConfig, log: Log = print) -> Report:
    from catdog.benchmarks.common.env import collect_env
    from catdog.benchmarks.common.report import write_report
    from catdog.benchmarks.grid.artifacts import discover
    from catdog.benchmarks.run.bench import _artifact_rows, _load
    from catdog.runtime.engine.shipped import resolve_model
    from catdog.runtime.scale.sources import list_sources
    from catdog.runtime.spine.fileio import check_writable_dir

    check_writable_dir(cfg.out_dir)
    sources = list_sources(cfg.inputs)
    model = resolve_model(cfg.model, "cpu")
    for s in set(sources):  # warm the page cache for every contender alike
        Path(s).read_bytes()
    arts, _ = discover([model], torch_ok=False)
    load_before = _load()
    results: dict[str, list[Measured]] = {SINGLE: [], SINGLE_T1: []}
    plans: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="catdog-scale-") as tmp:
        contenders: list[int | str | None] = [None, "t1", *cfg.actors]
        for rnd in range(cfg.rounds):
            for k in contenders[rnd % len(contenders):] + contenders[: rnd % len(contenders)]:
                if not isinstance(k, int):
                    name = SINGLE if k is None else SINGLE_T1
                    m = single_process(sources, model, None if k is None else 1)
                    results[name].append(m)
                    log(f"round {rnd + 1}: {name}: {m.steady_ips or 0:.1f} images/s steady")
                    continue
                m, plan = on_ray(cfg, k, Path(tmp) / f"r{rnd}-a{k}")
                name = f"--ray, {plan.actors} x ({plan.threads} ORT + {plan.workers} decode thr, {plan.num_cpus:g} CPU)"
                results.setdefault(name, []).append(m)
                plans[name] = plan
                log(f"round {rnd + 1}: {k} actor(s) {m.steady_ips or 0:.1f} images/s steady, "
                    f"Ray start {m.startup_s:.1f} s, first result {m.first_result_s or 0:.1f} s later")
    load_after = _load()
    rows = _rows(results, plans)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    settings = RunSettings(("cpu",), (16,), (cfg.threads,), 0, cfg.rounds, None, 1,
                           f"{len(sources)} inputs from {cfg.inputs}", arts[0].meta.spec.to_dict() if arts[0].meta
                           else {})
    about = (f"{len(sources)} inputs ({len(set(sources))} distinct files) from {cfg.inputs}, model {model.name}, "
             f"CPU only; median of {cfg.rounds} interleaved rounds. startup_s: Ray's start (single process: model "
             "load); first_result_s: from then to the first result block (actors' start-up and first block); "
             "steady_ips: images after each worker's first block over the time they took; overall_ips: all "
             "images over the whole run, start-up included; vs_single: steady_ips over the single process's; "
             "efficiency: steady_ips over (actors x the 1-actor figure).")
    report = Report(cfg.name, time.strftime("%Y-%m-%dT%H:%M:%S%z"), cfg.command, collect_env(), settings,
                    _artifact_rows(arts, log), [], [], (load_before, load_after), [],
                    sections={"scale": Section(about, tuple(rows))})
    report.notes.append(load_note(load_before, load_after, cores))
    write_report(report, cfg.out_dir)
    return report
