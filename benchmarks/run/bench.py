"""`catdog-bench run`: discover artifacts, measure the grid, add the optional sections, write the
report folder. The CLI builds a BenchConfig; this module does the work and knows nothing of typer.

The optional sections are a table: each is added when its input is given (accuracy and folder
throughput: --data; cold start and runtime overhead: always, on the fp32 ONNX; video: --video). A
section that fails records its one-line error in the report instead of losing the run."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Callable

from catdog.benchmarks.common.charts import make_charts
from catdog.benchmarks.common.config import BenchConfig, Log, Progress
from catdog.benchmarks.common.env import collect_env
from catdog.benchmarks.common.report import compute_ratios, write_report
from catdog.benchmarks.common.schema import ArtifactRow, Peak, Report, RunSettings, Section
from catdog.benchmarks.grid.artifacts import Artifact, discover, input_images, list_photos, spec_of, torch_available
from catdog.benchmarks.grid.compute import count, measure_peak, onnx_available
from catdog.benchmarks.grid.measure import Grid, add_efficiency, run_grid
from catdog.benchmarks.grid.runners import GpuSettings
from catdog.benchmarks.run.contenders import coldstart_section, folder_section
from catdog.benchmarks.run.large import large_section
from catdog.benchmarks.run.sections import Inputs, accuracy_section, overhead_section, pipeline_section
from catdog.runtime.spine.errors import CatdogError
from catdog.runtime.spine.fileio import check_writable_dir, file_sha256


@dataclass(frozen=True)
class SectionEntry:
    run: Callable[[Inputs], Section]
    wanted: Callable[[BenchConfig], bool]  # its input was given
    on_primary: bool = True  # runtime-facing: needs a float ONNX artifact


SECTIONS: dict[str, SectionEntry] = {  # in report order
    "accuracy": SectionEntry(accuracy_section, lambda c: c.data is not None, on_primary=False),
    "coldstart": SectionEntry(coldstart_section, lambda c: c.coldstart_runs > 0),
    "overhead": SectionEntry(overhead_section, lambda c: True),
    "folder": SectionEntry(folder_section, lambda c: c.data is not None),
    "large": SectionEntry(large_section, lambda c: c.data is not None and c.large_photos > 0),
    "pipeline": SectionEntry(pipeline_section, lambda c: c.video is not None),
}


def add_sections(report: Report, inp: Inputs) -> None:
    noted = False
    for name, entry in SECTIONS.items():
        if entry.on_primary and inp.primary is None:
            if not noted:
                report.notes.append("no float ONNX artifact: cold start, overhead, folder and video sections left out")
                noted = True
            continue
        if name not in inp.cfg.sections or not entry.wanted(inp.cfg):
            continue
        try:
            report.sections[name] = entry.run(inp)
            inp.log(f"{name}: done")
        except (CatdogError, ImportError) as e:  # ImportError: an optional package or module is missing
            report.sections[name] = Section(error=str(e))
            report.notes.append(f"{name} section failed: {e}")
            inp.log(f"{name}: failed: {e}")


def _artifact_rows(arts: list[Artifact], log: Log) -> list[ArtifactRow]:
    rows = []
    for a in arts:
        counted = count(a.path, a.size) if a.kind == "onnx" else None
        size = a.path.stat().st_size
        rows.append(ArtifactRow(
            a.name, str(a.path), a.kind, a.precision, "uint8" if a.uint8_input else "float", a.size,
            arch=a.meta.arch if a.meta else None, classes=a.meta.classes if a.meta else None,
            size_bytes=size, size_mb=size / 1e6, sha256=file_sha256(a.path),
            params=counted["params"] if counted else None, gflops=counted["gflops"] if counted else None))
    # torch artifacts compute what the fp32 graph computes: reuse its count for % of peak
    ref = next((r for r in rows if r.name == "onnx-fp32" and r.gflops), None)
    if ref is not None:
        rows = [r if r.kind == "onnx" else replace(r, gflops=ref.gflops, params=ref.params) for r in rows]
    if not onnx_available():
        log("onnx is not installed: parameter count and GFLOPs are n/a")
    return rows


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _peaks(grid: Grid, before: dict[tuple[str, int | None], Peak] | None = None) -> dict[tuple[str, int | None], Peak]:
    """The measured peak per (provider, threads); with `before`, the better of the two (a busy
    neighbour only ever lowers a peak)."""
    now = {g: measure_peak(g[0], g[1], gpu=grid.gpu) for g in grid.groups()}
    if before is None:
        return now
    return {k: p if (p.gflops or 0) > (before[k].gflops or 0) else before[k] for k, p in now.items()}


def _notes(report: Report, cfg: BenchConfig, load_before: float | None) -> None:
    missing = sorted({f"{r.artifact} on {r.provider}" for r in report.latency if r.status == "missing"})
    if missing:
        report.notes.append("ORT-GPU figures still missing (this onnxruntime has no GPU provider; torch rows ran on "
                            "the GPU): " + ", ".join(missing))
    gpu_rows = sorted({r.provider for r in report.latency if r.provider != "cpu" and r.status == "ok"})
    if gpu_rows:
        math = "TF32 on" if cfg.tf32 else "TF32 off (TensorRT's fp32 kernels may still use TF32: no switch)"
        report.notes.append(f"GPU rows ({', '.join(gpu_rows)}) on device {cfg.device_id}, {math} for torch CUDA, "
                            "ORT CUDA and TensorRT alike")
    if "tensorrt" in gpu_rows:
        report.notes.append("TensorRT rows: one engine per batch size, built for exactly that batch before its rows "
                            "were timed (optimization profile b..b); create_s includes the engine build or cache load")
    busy = load_before or 0.0  # before our own runs: afterwards the average counts us too
    cores = report.env["cores_usable"]
    if busy > 0.75 * (cores or 1):
        report.notes.append(f"the machine was busy (load average {busy:.1f} on {cores} usable cores): "
                            "absolute numbers are noisy; interleaving keeps the ratios fair")


def run_benchmark(cfg: BenchConfig, log: Log = print, progress: Progress | None = None) -> Report:
    arts, left_out = discover(list(cfg.models), cfg.torch_ckpt, torch_ok=torch_available(),
                              amp=cfg.torch_ckpt is not None and "cuda" in cfg.providers)
    check_writable_dir(cfg.out_dir)  # before the long work, after the inputs proved readable
    spec = spec_of(arts)
    photos = list_photos(cfg.data, arts) if cfg.data is not None else None  # one listing for the whole run
    images, input_desc = input_images(photos, max(cfg.batches), spec)
    log(f"{len(arts)} artifacts: {', '.join(a.name for a in arts)}; providers {', '.join(cfg.providers)}")
    env = collect_env()
    art_rows = _artifact_rows(arts, log)

    grid = Grid(cfg.providers, cfg.batches, cfg.threads, cfg.loop, GpuSettings(cfg.device_id, cfg.tf32))
    load_before = _load()
    peaks = _peaks(grid) if cfg.peak else {}
    t0 = time.perf_counter()
    rows = run_grid(arts, grid, images, spec, progress)
    log(f"latency grid done in {time.perf_counter() - t0:.1f} s")
    if cfg.peak:
        peaks = _peaks(grid, peaks)
    rows = add_efficiency(rows, {r.name: r.gflops for r in art_rows}, {k: p.gflops for k, p in peaks.items()})
    settings = RunSettings(cfg.providers, cfg.batches, cfg.threads, cfg.loop.warmup, cfg.loop.iters, cfg.loop.seconds,
                           cfg.loop.block, input_desc, spec.to_dict())
    report = Report(cfg.name, time.strftime("%Y-%m-%dT%H:%M:%S%z"), cfg.command, env, settings, art_rows, rows,
                    list(peaks.values()), (load_before, _load()), compute_ratios(rows), notes=list(left_out))
    _notes(report, cfg, load_before)
    add_sections(report, Inputs(cfg, tuple(arts), spec, photos, log))
    report.charts = make_charts(report.to_dict(), cfg.out_dir)
    write_report(report, cfg.out_dir)
    return report
