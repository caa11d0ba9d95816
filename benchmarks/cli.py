"""catdog-bench: run (latency/throughput/memory/accuracy report), compare (ratios between two
reports), doctor (prove each provider, show OpenCV build facts and cameras)."""

# The options' defaults are the configs' (common/config.py, serve/load.py): each is written once, there.

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from catdog.benchmarks.common.config import EVERY_PROVIDER, REPORTS, BenchConfig, Log, ScaleConfig
from catdog.benchmarks.live.measure import LiveBenchConfig
from catdog.benchmarks.serve.faults import FaultMix
from catdog.benchmarks.serve.load import ServeBenchConfig
from catdog.runtime.spine.boundary import cli_boundary
from catdog.runtime.spine.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
REPORT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
B = BenchConfig
LB = LiveBenchConfig


def _csv(values: tuple[int, ...]) -> str:
    """A tuple default as the comma list the option takes: (1, 8, 32) -> "1,8,32"."""
    return ",".join(map(str, values))


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.")) -> None:
    # `catdog-bench --debug run ...`: @cli_boundary reads this param from the root context.
    del debug


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--{what} wants comma-separated positive integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise InputError(f"--{what} wants comma-separated positive integers, got {text!r}")
    return tuple(dict.fromkeys(vals))


def report_name(name: str | None, first_model: Path) -> str:
    """The report folder's name: --name as given, which must be one plain folder name (it is joined
    to --out, so '../x' or 'a/b' would write elsewhere), else derived from the first model's name."""
    if name is None:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", first_model.resolve().name) or "bench"
    if not REPORT_NAME.fullmatch(name) or name in (".", ".."):
        raise InputError(f"--name {name!r}: a report name is one folder name of letters, digits, '_', '.' and '-' "
                         "(not '.' or '..'); the report goes to --out/NAME")
    return name


class _Progress:
    """Adapter from the measure loop's (label, advance, total) calls to a rich progress bar."""

    def __init__(self, bar: Any):
        self.bar, self.tasks = bar, {}

    def __call__(self, label: str, advance: int, total: Optional[int]) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.bar.add_task(label, total=total)
        if advance:
            self.bar.advance(self.tasks[label], advance)


def _plain_log(console: Any) -> Log:
    """Log lines as typed: they carry file and artifact names, which rich must not read as markup
    ('[bold]', '[/x]') or emoji codes."""
    from rich.text import Text

    return lambda msg: console.print(Text(msg), soft_wrap=True)


@app.command()
@cli_boundary
def run(
    models: List[Path] = typer.Argument(..., help="An export folder and/or model files (.onnx, .ts)."),
    name: Optional[str] = typer.Option(None, help="Report name (reports/<name>/); default: the first model's name."),
    out: Path = typer.Option(REPORTS, help="Folder that holds the report folders."),
    providers: str = typer.Option(EVERY_PROVIDER,
                                  help="Comma list of cpu,cuda,tensorrt; 'all' = every available one."),
    batch: str = typer.Option(_csv(B.batches), help="Batch sizes."),
    threads: Optional[str] = typer.Option(None, help="CPU thread counts (default: the usable cores)."),
    warmup: int = typer.Option(B.loop.warmup, min=0, help="Discarded runs per artifact before timing."),
    iters: Optional[int] = typer.Option(None, min=1,
                                        help=f"Timed runs per artifact (default {B.loop.iters} unless --seconds)."),
    seconds: Optional[float] = typer.Option(None, help="Timed seconds per artifact instead of --iters."),
    block: int = typer.Option(B.loop.block, min=1, help="Runs per artifact before the round-robin moves on."),
    data: Optional[Path] = typer.Option(None, help="Labeled folder: real inputs, accuracy, folder throughput."),
    video: Optional[Path] = typer.Option(None, help="Video file for the end-to-end pipeline section."),
    torch_ckpt: Optional[Path] = typer.Option(None, help="best.pth: adds torch eager (needs torch)."),
    accuracy_limit: int = typer.Option(B.accuracy_limit, min=0, help="Images for accuracy (0 = all)."),
    coldstart_runs: int = typer.Option(B.coldstart_runs, min=0,
                                       help="Fresh processes per cold-start figure (0 = skip)."),
    large_photos: int = typer.Option(B.large_photos, min=0,
                                     help="With --data: make ~12 MP phone-like copies of this many "
                                          "photos and compare reduced vs full JPEG decode (0 = skip)."),
    no_peak: bool = typer.Option(not B.peak, "--no-peak", help="Skip the GEMM peak measurement."),
    device_id: int = typer.Option(B.device_id, "--device-id", min=0,
                                  help="GPU for the CUDA, TensorRT and torch CUDA rows."),
    tf32: bool = typer.Option(B.tf32, "--tf32/--no-tf32",
                              help="TF32 for fp32 math on every GPU row alike (TensorRT's fp32 uses it regardless)."),
) -> None:
    """Benchmark artifacts and write reports/<name>/report.{md,json} and charts."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from catdog.benchmarks.common.config import LoopConfig
    from catdog.benchmarks.common.report import summary_lines
    from catdog.benchmarks.grid.artifacts import resolve_providers
    from catdog.benchmarks.run.bench import run_benchmark

    folder = report_name(name, models[0])  # refused before any work
    if iters is not None and seconds is not None:
        raise InputError("give --iters or --seconds, not both")
    # torch_ok: a GPU that only torch can use still gives torch CUDA / AMP rows (ORT-GPU ones marked missing)
    provs = tuple(resolve_providers([p.strip() for p in providers.split(",") if p.strip()], torch_ok=True))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cfg = BenchConfig(
        models=tuple(models), out_dir=out / folder, name=folder, providers=provs,
        batches=_ints(batch, "batch"), threads=_ints(threads, "threads") if threads else (cores,),
        loop=LoopConfig(warmup, None if seconds else (iters or B.loop.iters), seconds, block),
        data=data, video=video, torch_ckpt=torch_ckpt, accuracy_limit=accuracy_limit or None,
        coldstart_runs=coldstart_runs, large_photos=large_photos, peak=not no_peak,
        command="catdog-bench " + " ".join(sys.argv[1:]), device_id=device_id, tf32=tf32)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        rep = run_benchmark(cfg, log=_plain_log(bar.console), progress=_Progress(bar)).to_dict()
    for line in summary_lines(rep):
        typer.echo(line)
    typer.echo(f"report: {cfg.out_dir / 'report.md'} (+ report.json, {len(rep['charts'])} charts)")


@app.command()
@cli_boundary
def scale(
    inputs: str = typer.Argument(..., help="What catdog-runtime --ray takes: a folder, glob, list file (.txt) or URI."),
    model: Optional[Path] = typer.Option(None, help="ONNX model (default: the shipped CPU model)."),
    actors: str = typer.Option(_csv(ScaleConfig.actors), help="Actor counts to measure (comma list)."),
    threads: Optional[int] = typer.Option(ScaleConfig.threads, min=1,
                                          help="onnxruntime threads per actor (default: --ray's)."),
    rounds: int = typer.Option(ScaleConfig.rounds, min=1, help="Interleaved rounds; the report takes medians."),
    name: str = typer.Option("scale", help="Report name (reports/<name>/)."),
    out: Path = typer.Option(REPORTS, help="Folder that holds the report folders."),
) -> None:
    """Images/s of catdog-runtime --ray (local Ray, 1, 2, ... actors) vs the single-process runtime."""
    from catdog.benchmarks.common.report import summary_lines
    from catdog.benchmarks.scale import run_scale

    folder = report_name(name, Path(name))
    cfg = ScaleConfig(inputs, out / folder, folder, model, _ints(actors, "actors"), threads, rounds,
                      command="catdog-bench " + " ".join(sys.argv[1:]))
    rep = run_scale(cfg, log=lambda msg: typer.echo(msg, err=True)).to_dict()
    for line in summary_lines(rep):
        typer.echo(line)
    typer.echo(f"report: {cfg.out_dir / 'report.md'} (+ report.json)")


@app.command()
@cli_boundary
def serve(
    photos: Path = typer.Argument(..., help="A folder of real photos: POST bodies and the in-process reference."),
    model: Optional[Path] = typer.Option(None, help="ONNX model (default: the shipped CPU model)."),
    requests: int = typer.Option(ServeBenchConfig.requests, min=1, help="POSTs per concurrency level."),
    soak: float = typer.Option(ServeBenchConfig.soak_s, min=1.0, help="Soak seconds at 8 clients."),
    window: float = typer.Option(ServeBenchConfig.window_s, min=1.0, help="Seconds per MJPEG viewer measurement."),
    faults: float = typer.Option(FaultMix.seconds, min=0.0, help="Fault soak seconds (timeouts, uploads cut short, "
                                 "idle viewers, half-open sockets); 0: none."),
    name: str = typer.Option("serve", help="Report name (reports/<name>/)."),
    out: Path = typer.Option(REPORTS, help="Folder that holds the report folders."),
) -> None:
    """What --serve costs: POST throughput and latency at 1/8/32 clients vs in-process, MJPEG viewers vs FPS,
    and what it withstands (the fault soak)."""
    from catdog.benchmarks.serve.run import run_serve_bench

    cfg = ServeBenchConfig(photos, out / name, model, requests=requests, soak_s=soak, window_s=window,
                           faults=FaultMix(seconds=faults), command="catdog-bench " + " ".join(sys.argv[1:]))
    data = run_serve_bench(cfg, log=lambda msg: typer.echo(msg, err=True))
    for t in data["targets"]:
        typer.echo(f"{t['target']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})")
    typer.echo(f"report: {cfg.out_dir / 'report.md'} (+ report.json)")


@app.command()
@cli_boundary
def live(
    photos: Path = typer.Argument(..., help="A folder of real photos: what the RTSP camera shows."),
    fps: str = typer.Option(_csv(LB.fps), help="Camera frame rates, comma-separated."),
    backends: str = typer.Option(",".join(LB.backends), help="ffmpeg (pip OpenCV) and/or gstreamer (system OpenCV)."),
    seconds: float = typer.Option(LB.seconds, min=1.0, help="Measured seconds per frame rate and backend."),
    warmup: float = typer.Option(LB.warmup_s, min=0.0, help="Seconds from the first label to the measuring."),
    size: str = typer.Option("x".join(map(str, LB.size)), help="The camera's WIDTHxHEIGHT."),
    ffmpeg_python: Path = typer.Option(Path(sys.executable), help="The Python whose catdog-runtime reads rtsp:// "
                                       "through OpenCV's FFmpeg backend (default: this one)."),
    gst_python: Optional[Path] = typer.Option(None, help="The Python of a Jetson-recipe venv (system python3-opencv "
                                              "with GStreamer) whose catdog-runtime reads a gst: rtspsrc pipeline."),
    camera_python: Path = typer.Option(Path(LB.camera_python), help="Debian's python3 with python3-gi and "
                                       "GStreamer's RTSP server: runs the camera."),
    model: Optional[Path] = typer.Option(None, help="ONNX model (default: the shipped one for the CPU)."),
    name: str = typer.Option("live", help="Report name (reports/<name>/)."),
    out: Path = typer.Option(REPORTS, help="Folder that holds the report folders."),
) -> None:
    """A real RTSP camera at each frame rate, both backends: classified vs sent, drops, frame age, CPU, RSS, decode."""
    from catdog.benchmarks.live.measure import backends_arg, size_arg
    from catdog.benchmarks.live.report import summary_lines
    from catdog.benchmarks.live.run import run_live_bench

    pythons = {"ffmpeg": str(ffmpeg_python), "gstreamer": str(gst_python) if gst_python else None}
    cfg = LiveBenchConfig(photos, out / report_name(name, Path(name)), pythons, str(camera_python),
                          _ints(fps, "fps"), backends_arg(backends), seconds, warmup, size_arg(size),
                          model=model, command="catdog-bench " + " ".join(sys.argv[1:]))
    data = run_live_bench(cfg, log=lambda msg: typer.echo(msg, err=True))
    typer.echo("\n".join(summary_lines(data)))
    typer.echo(f"report: {cfg.out_dir / 'report.md'} (+ report.json)")


@app.command()
@cli_boundary
def int8(
    data: List[Path] = typer.Argument(..., help="Labelled evaluation folders (class folders or cat.1.jpg names)."),
    fp32: Optional[Path] = typer.Option(None, help="The fp32 ONNX model (default: the shipped one)."),
    model: List[Path] = typer.Option([], "--int8", help="An INT8 model to compare, repeatable (default: the "
                                                        "shipped one); each gets its own target lines."),
    label: List[str] = typer.Option([], "--label", help="Report names of the --int8 models, in order."),
    batches: str = typer.Option("1,16", help="Batch sizes, comma-separated."),
    threads: str = typer.Option("1,2", help="Thread counts, comma-separated."),
    iters: int = typer.Option(40, min=4, help="Timed runs per model at batch 1."),
    name: str = typer.Option("int8", help="Report name (reports/<name>/)."),
    out: Path = typer.Option(REPORTS, help="Folder that holds the report folders."),
) -> None:
    """CPU INT8 against its fp32 in one run: errors per set, speed per batch x threads, the op profile."""
    from catdog.benchmarks.int8.bench import Int8BenchConfig, run_int8_bench
    from catdog.benchmarks.int8.report import target_lines
    from catdog.runtime.engine.shipped import shipped_model

    if label and len(label) != len(model or [None]):
        raise InputError(f"--label is given {len(label)} times for {len(model or [None])} INT8 model(s)")
    cfg = Int8BenchConfig(fp32 or shipped_model("fp32"), tuple(model) or (shipped_model("int8"),), tuple(data),
                          out / report_name(name, data[0]), _ints(batches, "batches"), _ints(threads, "threads"),
                          iters, command="catdog-bench " + " ".join(sys.argv[1:]), names=tuple(label))
    report = run_int8_bench(cfg, log=lambda msg: typer.echo(msg, err=True))
    for line in target_lines(report):
        typer.echo(line)
    typer.echo(f"report: {cfg.out_dir / 'report.md'} (+ report.json)")


@app.command()
@cli_boundary
def compare(a: Path = typer.Argument(..., help="Reference report.json"),
            b: Path = typer.Argument(..., help="Candidate report.json")) -> None:
    """Print B / A ratios for every latency row both reports share (p50 < 1: B is faster)."""
    from catdog.benchmarks.common.report import compare as compare_reports
    from catdog.benchmarks.common.report import load_report

    ra, rb = load_report(a), load_report(b)
    rows = compare_reports(ra, rb)
    if not rows:
        raise InputError(f"{a} and {b} share no (artifact, provider, threads, batch) rows to compare")
    typer.echo(f"A = {ra['name']} ({ra['env']['cpu']}), B = {rb['name']} ({rb['env']['cpu']})")
    typer.echo(f"{'artifact':<14} {'provider':<9} {'thr':>4} {'batch':>5} {'A p50 ms':>9} {'B p50 ms':>9} "
               f"{'B/A p50':>8} {'B/A img/s':>9}")
    for r in rows:
        typer.echo(f"{r['artifact']:<14} {r['provider']:<9} {str(r['threads'] or '-'):>4} {r['batch']:>5} "
                   f"{r['p50_a_ms']:>9.2f} {r['p50_b_ms']:>9.2f} {r['p50_ratio']:>7.2f}x "
                   f"{r['throughput_ratio']:>8.2f}x")


@app.command()
@cli_boundary
def doctor(
    providers: str = typer.Option(EVERY_PROVIDER, help="Providers to prove; 'all' = every available one."),
    model: Optional[Path] = typer.Option(None, help="Prove with this ONNX model instead of a built-in probe."),
    as_json: bool = typer.Option(False, "--json", help="Print the facts as JSON."),
    device_id: int = typer.Option(B.device_id, "--device-id", min=0, help="GPU the CUDA / TensorRT proofs run on."),
) -> None:
    """Prove each provider by a real inference; show OpenCV build facts and visible cameras."""
    from catdog.benchmarks.doctor import doctor_lines, run_doctor

    d = run_doctor([p.strip() for p in providers.split(",") if p.strip()], model, device_id)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in d.items() if k != "env_lines"}, indent=2, default=str))
    else:
        typer.echo("\n".join(doctor_lines(d)))
    if not all(r["ok"] for r in d["providers"]):
        raise typer.Exit(1)


def main() -> None:
    app()
