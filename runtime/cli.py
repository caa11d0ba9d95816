"""catdog-runtime SOURCE [--model M]: classify photos, folders, globs, videos, cameras and streams
with onnxruntime + OpenCV only. Errors are one line on stderr and a non-zero exit (traceback with
--debug); a bad file never stops a folder run, but the exit code says something failed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import typer

from catdog.runtime.boundary import EXIT_INTERRUPTED, cli_boundary, say
from catdog.runtime.errors import InputError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Classify images, folders, videos, cameras and streams with an ONNX model (no torch).")

EXIT_SOME_FAILED = 1


def _floats3(text: Optional[str], flag: str) -> Optional[tuple[float, float, float]]:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        vals = ()
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise InputError(f"{flag} needs 1 or 3 numbers like 0.485,0.456,0.406, got {text!r}")
    return vals  # type: ignore[return-value]


def _summary(clf: Any, title: str, extra: list[tuple[str, str]] = ()) -> None:
    """Plain aligned lines on stderr: importing rich only for this would cost ~0.1 s of cold start."""
    model = f"{clf.session.path.name} ({clf.metadata.precision})"
    if clf.temperature != 1.0:
        model += f", scores calibrated with temperature {clf.temperature:.3f}"
    rows = [("model", model), ("provider", clf.session.provider), *clf.times.summary_rows(), *extra]
    width = max(len(k) for k, _ in rows)
    lines = [f"-- {title}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _run_files(clf: Any, files: tuple[Path, ...], sinks: list[Any]) -> bool:
    """Returns True if interrupted. Progress on stderr only for an interactive terminal."""
    interrupted = False
    if len(files) < 2 or not sys.stderr.isatty():  # no progress bar: skip importing rich for it
        try:
            for source, result in clf.iter_predict(files):
                for sink in sinks:
                    sink.add(source, result)
        except KeyboardInterrupt:
            interrupted = True
        return interrupted
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("classifying", total=len(files))
        try:
            for source, result in clf.iter_predict(files):
                for sink in sinks:
                    sink.add(source, result)
                bar.advance(task)
        except KeyboardInterrupt:
            interrupted = True
    return interrupted


@dataclass(frozen=True)
class RunOptions:
    """Everything one `catdog-runtime` run is told; the CLI's defaults are these."""

    source: Optional[str] = None
    model: Optional[Path] = None
    provider: str = "auto"
    threads: Optional[int] = None
    batch: int = 16
    workers: int = 2
    recursive: bool = False
    json_out: bool = False
    csv_path: Optional[Path] = None
    labels: Optional[Path] = None
    size: Optional[int] = None
    mean: Optional[str] = None
    std: Optional[str] = None
    bgr: bool = False
    scale: Optional[float] = None
    csi: Optional[int] = None
    show: bool = False
    save: Optional[Path] = None
    smooth: int = 1
    topk: int = 1
    realtime: bool = False
    max_frames: Optional[int] = None
    reconnects: int = 10
    trt_fp16: bool = False
    trt_int8: bool = False
    trt_cache: Optional[Path] = None
    device_id: int = 0
    unsure_below: Optional[float] = None
    full_decode: bool = False


D = RunOptions()


def run(o: RunOptions) -> int:
    from catdog.runtime.classifier import Classifier
    from catdog.runtime.shipped import resolve_model
    from catdog.runtime.sinks import AccuracySink, CsvSink, JsonSink, TableSink
    from catdog.runtime.sources import GST_PREFIX, csi_pipeline, open_source

    source = GST_PREFIX + csi_pipeline(o.csi) if o.csi is not None else o.source
    if not source:
        raise InputError("give a SOURCE (image, folder, glob, video, camera index, URL or gst:PIPELINE) or --csi N")
    src = open_source(source, recursive=o.recursive)  # before loading the model: a typo fails fast
    overrides = {"size": o.size, "mean": _floats3(o.mean, "--mean"), "std": _floats3(o.std, "--std"),
                 "channel_order": "BGR" if o.bgr else None, "scale": o.scale}
    clf = Classifier.from_file(resolve_model(o.model, o.provider), provider=o.provider, threads=o.threads,
                               labels=o.labels, spec={k: v for k, v in overrides.items() if v is not None},
                               batch_size=o.batch, workers=o.workers, trt_fp16=o.trt_fp16, trt_int8=o.trt_int8,
                               trt_cache_dir=o.trt_cache, device_id=o.device_id, unsure_below=o.unsure_below,
                               full_decode=o.full_decode,
                               spinning=not (src.kind == "files" and len(src.files) > 1))  # see open_session
    sinks: list[Any] = [JsonSink()] if o.json_out else []
    if o.csv_path:
        sinks.append(CsvSink(o.csv_path, clf.classes))

    clf.reset_times()
    if src.kind == "files":
        if o.show or o.save:
            say("note: --show and --save apply to videos, cameras and streams; ignored for image files")
        if not o.json_out:
            sinks.insert(0, TableSink(o.topk))
        accuracy = AccuracySink(clf.classes)
        interrupted = _run_files(clf, src.files, [*sinks, accuracy])
        for sink in sinks:
            sink.close()
        _summary(clf, "interrupted (Ctrl-C)" if interrupted else f"{len(src.files)} file(s)", accuracy.summary_rows())
    else:
        from catdog.runtime.live import LiveOptions, run_live

        live = LiveOptions(show=o.show, save=o.save, smooth=o.smooth, topk=o.topk, realtime=o.realtime,
                           max_frames=o.max_frames, max_reconnects=o.reconnects)
        res = run_live(clf, src, live, sinks, log=say)
        interrupted = res.interrupted
        for sink in sinks:
            sink.close()
        extra = [("stopped by", res.stop_reason)]
        if res.labels:
            extra.append(("labels", ", ".join(f"{k} {v}" for k, v in res.labels.most_common(5))))
        if res.saved:
            extra.append(("saved", str(res.saved)))
        if res.error:
            extra.append(("error", res.error))
            say(f"error: {res.error}")
        _summary(clf, f"{src.kind} {src.spec}", extra)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if clf.times.failed else 0


@app.command()
@cli_boundary
def main_command(
    source: Optional[str] = typer.Argument(
        D.source, help="image, folder, glob, video, camera index, /dev/videoN, URL, or gst:PIPELINE (GStreamer)"),
    model: Optional[Path] = typer.Option(
        D.model, "--model", "-m",
        help="ONNX model file, or fp32 / int8 for a shipped one (default: int8 on CPU, fp32 on GPU)"),
    provider: str = typer.Option(D.provider, help="auto | cpu | cuda | tensorrt | openvino | coreml | dml | rocm"),
    threads: Optional[int] = typer.Option(D.threads, help="CPU threads for onnxruntime"),
    batch: int = typer.Option(D.batch, min=1, help="images per inference on folders"),
    workers: int = typer.Option(D.workers, min=1, help="decode threads on folders"),
    recursive: bool = typer.Option(D.recursive, "--recursive", "-r", help="include subfolders"),
    json_out: bool = typer.Option(D.json_out, "--json", help="JSON lines on stdout, one per input"),
    csv_path: Optional[Path] = typer.Option(D.csv_path, "--csv", help="also write results to this CSV file"),
    labels: Optional[Path] = typer.Option(D.labels, help="class names for a model without catdog metadata"),
    size: Optional[int] = typer.Option(D.size, help="input size (third-party models)"),
    mean: Optional[str] = typer.Option(D.mean, help="per-channel mean, e.g. 0.485,0.456,0.406"),
    std: Optional[str] = typer.Option(D.std, help="per-channel std, e.g. 0.229,0.224,0.225"),
    bgr: bool = typer.Option(D.bgr, "--bgr", help="the model takes BGR channel order"),
    scale: Optional[float] = typer.Option(D.scale, help="pixel multiplier before mean/std (default 1/255)"),
    csi: Optional[int] = typer.Option(D.csi, help="Jetson CSI camera sensor id (builds the nvarguscamerasrc pipeline)"),
    show: bool = typer.Option(D.show, "--show", help="open a window with the overlay (q quits)"),
    save: Optional[Path] = typer.Option(D.save, help="write the annotated video here (.mp4 or .avi)"),
    smooth: int = typer.Option(D.smooth, min=1, help="average the last N frames' probabilities"),
    topk: int = typer.Option(D.topk, min=1, help="show the top K classes"),
    realtime: bool = typer.Option(D.realtime, "--realtime",
                                  help="play video files at their frame rate, dropping frames"),
    max_frames: Optional[int] = typer.Option(D.max_frames, min=1, help="stop after N frames"),
    reconnects: int = typer.Option(
        D.reconnects, min=0,
        help="reopen a dropped camera/stream up to N times in a row (backoff 0.5 s doubling to 8 s)"),
    trt_fp16: bool = typer.Option(D.trt_fp16, "--trt-fp16", help="TensorRT: allow fp16 kernels"),
    trt_int8: bool = typer.Option(D.trt_int8, "--trt-int8", help="TensorRT: allow int8 kernels"),
    trt_cache: Optional[Path] = typer.Option(D.trt_cache, help="TensorRT engine cache folder"),
    device_id: int = typer.Option(D.device_id, min=0, help="GPU to run on (CUDA / TensorRT providers)"),
    unsure_below: Optional[float] = typer.Option(
        D.unsure_below, min=0.0, max=1.0,
        help="label a photo or frame 'unsure' when its top (calibrated) probability is below this, e.g. 0.8"),
    full_decode: bool = typer.Option(
        D.full_decode, "--full-decode",
        help="decode JPEGs at full size (default: libjpeg's 1/2, 1/4 or 1/8 scale when the photo is still at "
             "least the model's resize; 2-3x faster on phone photos)"),
) -> None:
    # The parameters are RunOptions' fields one for one (a renamed or missing one is a TypeError).
    given = locals()
    raise typer.Exit(run(RunOptions(**{f.name: given[f.name] for f in fields(RunOptions)})))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
