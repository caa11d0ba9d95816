"""catdog-runtime SOURCE [--model M]: classify photos, folders, globs, videos, cameras and streams
with onnxruntime + OpenCV only. Errors are one line on stderr and a non-zero exit (traceback with
--debug); a bad file never stops a folder run, but the exit code says something failed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from catdog.runtime.errors import CatdogError, InputError, ModelError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Classify images, folders, videos, cameras and streams with an ONNX model (no torch).")

EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def run(source: Optional[str], model: Optional[Path], provider: str, threads: Optional[int], batch: int,
        workers: int, recursive: bool, json_out: bool, csv_path: Optional[Path], labels: Optional[Path],
        size: Optional[int], mean: Optional[str], std: Optional[str], bgr: bool, scale: Optional[float],
        csi: Optional[int], show: bool, save: Optional[Path], smooth: int, topk: int, realtime: bool,
        max_frames: Optional[int], trt_fp16: bool, trt_int8: bool, trt_cache: Optional[Path],
        reconnects: int = 10) -> int:
    from catdog.runtime.classifier import Classifier
    from catdog.runtime.shipped import resolve_model
    from catdog.runtime.sinks import CsvSink, JsonSink, TableSink
    from catdog.runtime.sources import GST_PREFIX, csi_pipeline, open_source

    if csi is not None:
        source = GST_PREFIX + csi_pipeline(csi)
    if not source:
        raise InputError("give a SOURCE (image, folder, glob, video, camera index, URL or pipeline) or --csi N")
    src = open_source(source, recursive=recursive)  # before loading the model: a typo fails fast
    overrides = {"size": size, "mean": _floats3(mean, "--mean"), "std": _floats3(std, "--std"),
                 "channel_order": "BGR" if bgr else None, "scale": scale}
    clf = Classifier.from_file(resolve_model(model, provider), provider=provider, threads=threads, labels=labels,
                               spec={k: v for k, v in overrides.items() if v is not None}, batch_size=batch,
                               workers=workers, trt_fp16=trt_fp16, trt_int8=trt_int8, trt_cache_dir=trt_cache,
                               spinning=not (src.kind == "files" and len(src.files) > 1))  # see open_session
    sinks: list[Any] = [JsonSink()] if json_out else []
    if csv_path:
        sinks.append(CsvSink(csv_path, clf.classes))

    clf.reset_times()
    if src.kind == "files":
        if show or save:
            _log("note: --show and --save apply to videos, cameras and streams; ignored for image files")
        if not json_out:
            sinks.insert(0, TableSink(topk))
        interrupted = _run_files(clf, src.files, sinks)
        for sink in sinks:
            sink.close()
        _summary(clf, "interrupted (Ctrl-C)" if interrupted else f"{len(src.files)} file(s)")
    else:
        from catdog.runtime.live import LiveOptions, run_live

        opts = LiveOptions(show=show, save=save, smooth=smooth, topk=topk, realtime=realtime, max_frames=max_frames,
                           max_reconnects=reconnects)
        res = run_live(clf, src, opts, sinks, log=_log)
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
            _log(f"error: {res.error}")
        _summary(clf, f"{src.kind} {src.spec}", extra)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if clf.times.failed else 0


@app.command()
def main_command(
    source: Optional[str] = typer.Argument(None, help="image, folder, glob, video, camera index, /dev/videoN, URL, or GStreamer pipeline"),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="ONNX model file, or fp32 / int8 for a shipped one (default: int8 on CPU, fp32 on GPU)"),
    provider: str = typer.Option("auto", help="auto | cpu | cuda | tensorrt | openvino | coreml | dml | rocm"),
    threads: Optional[int] = typer.Option(None, help="CPU threads for onnxruntime"),
    batch: int = typer.Option(16, min=1, help="images per inference on folders"),
    workers: int = typer.Option(2, min=1, help="decode threads on folders"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="include subfolders"),
    json_out: bool = typer.Option(False, "--json", help="JSON lines on stdout, one per input"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="also write results to this CSV file"),
    labels: Optional[Path] = typer.Option(None, help="class names for a model without catdog metadata"),
    size: Optional[int] = typer.Option(None, help="input size (third-party models)"),
    mean: Optional[str] = typer.Option(None, help="per-channel mean, e.g. 0.485,0.456,0.406"),
    std: Optional[str] = typer.Option(None, help="per-channel std, e.g. 0.229,0.224,0.225"),
    bgr: bool = typer.Option(False, "--bgr", help="the model takes BGR channel order"),
    scale: Optional[float] = typer.Option(None, help="pixel multiplier before mean/std (default 1/255)"),
    csi: Optional[int] = typer.Option(None, help="Jetson CSI camera sensor id (builds the nvarguscamerasrc pipeline)"),
    show: bool = typer.Option(False, "--show", help="open a window with the overlay (q quits)"),
    save: Optional[Path] = typer.Option(None, help="write the annotated video here (.mp4 or .avi)"),
    smooth: int = typer.Option(1, min=1, help="average the last N frames' probabilities"),
    topk: int = typer.Option(1, min=1, help="show the top K classes"),
    realtime: bool = typer.Option(False, "--realtime", help="play video files at their frame rate, dropping frames"),
    max_frames: Optional[int] = typer.Option(None, min=1, help="stop after N frames"),
    reconnects: int = typer.Option(10, min=0, help="reopen a dropped camera/stream up to N times in a row (backoff 0.5 s doubling to 8 s)"),
    trt_fp16: bool = typer.Option(False, "--trt-fp16", help="TensorRT: allow fp16 kernels"),
    trt_int8: bool = typer.Option(False, "--trt-int8", help="TensorRT: allow int8 kernels"),
    trt_cache: Optional[Path] = typer.Option(None, help="TensorRT engine cache folder"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    try:
        code = run(source, model, provider, threads, batch, workers, recursive, json_out, csv_path, labels, size,
                   mean, std, bgr, scale, csi, show, save, smooth, topk, realtime, max_frames, trt_fp16, trt_int8,
                   trt_cache, reconnects)
    except CatdogError as e:
        if debug:
            raise
        _log(f"error: {e}")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        _log("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
