"""catdog-runtime SOURCE [--model M]: classify photos, folders, globs, videos, cameras and streams
with onnxruntime + OpenCV only. Errors are one line on stderr and a non-zero exit (traceback with
--debug); a bad file never stops a folder run, but the exit code says something failed.

The options are one table (OPTIONS, over RunOptions' fields). The typer command (cli_app.py) is
built from it, and so is a quick parser for plain command lines (`catdog-runtime photo.jpg --json`):
importing typer and click is ~30 ms, a tenth of a one-photo run. The quick parser takes only what it
fully understands and hands everything else (--help, --opt=value, usage errors) to typer."""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

from catdog.runtime.boundary import failure_exit, interrupt_exit, interrupt_reason, say, stop_on_sigterm
from catdog.runtime.errors import InputError

EXIT_SOME_FAILED = 1
LOCAL_RAY = "local"  # `--ray` alone: Ray's own address for "start a new local instance" (runtime/scale.py)


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


def model_line(clf: Any) -> str:
    """The summary's `model` row: file, precision and the calibration temperature."""
    model = f"{clf.session.path.name} ({clf.metadata.precision})"
    if clf.temperature != 1.0:
        model += f", scores calibrated with temperature {clf.temperature:.3f}"
    return model


def summary_text(title: str, rows: list[tuple[str, str]]) -> str:
    """Plain aligned lines (importing rich only for this would cost ~0.1 s of cold start)."""
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"-- {title}"] + [f"  {k:<{width}}  {v}" for k, v in rows])


def _summary(clf: Any, title: str, extra: list[tuple[str, str]] = ()) -> None:
    rows = [("model", model_line(clf)), ("provider", clf.session.provider), *clf.times.summary_rows(), *extra]
    print(summary_text(title, rows), file=sys.stderr, flush=True)


def _run_files(clf: Any, files: tuple[Path, ...], sinks: list[Any]) -> KeyboardInterrupt | None:
    """Returns the Ctrl-C / SIGTERM that stopped it, if one did. Progress on stderr only for an
    interactive terminal."""
    if len(files) < 2 or not sys.stderr.isatty():  # no progress bar: skip importing rich for it
        try:
            for source, result in clf.iter_predict(files):
                for sink in sinks:
                    sink.add(source, result)
        except KeyboardInterrupt as e:
            return e
        return None
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("classifying", total=len(files))
        try:
            for source, result in clf.iter_predict(files):
                for sink in sinks:
                    sink.add(source, result)
                bar.advance(task)
        except KeyboardInterrupt as e:
            return e
    return None


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
    ray: Optional[str] = None  # --ray [ADDRESS]: LOCAL_RAY when given alone (runtime/scale.py)
    out: Optional[Path] = None
    resume: bool = False
    actors: Optional[int] = None
    gpus_per_actor: float = 1.0


D = RunOptions()


@dataclass(frozen=True)
class Opt:
    flags: tuple[str, ...]  # the first is the long name
    help: str
    min: float | None = None
    max: float | None = None


SOURCE_HELP = "image, folder, glob, video, camera index, /dev/videoN, URL, or gst:PIPELINE (GStreamer)"
OPTIONS: dict[str, Opt] = {  # RunOptions' fields but `source` (the argument), in --help order
    "model": Opt(("--model", "-m"),
                 "ONNX model file, or fp32 / int8 for a shipped one (default: int8 on CPU, fp32 on GPU)"),
    "provider": Opt(("--provider",), "auto | cpu | cuda | tensorrt | openvino | coreml | dml | rocm"),
    "threads": Opt(("--threads",), "CPU threads for onnxruntime (per actor with --ray)"),
    "batch": Opt(("--batch",), "images per inference on folders", min=1),
    "workers": Opt(("--workers",), "decode threads on folders (per actor with --ray)", min=1),
    "recursive": Opt(("--recursive", "-r"), "include subfolders"),
    "json_out": Opt(("--json",), "JSON lines on stdout, one per input"),
    "csv_path": Opt(("--csv",), "also write results to this CSV file"),
    "labels": Opt(("--labels",), "class names for a model without catdog metadata"),
    "size": Opt(("--size",), "input size (third-party models)"),
    "mean": Opt(("--mean",), "per-channel mean, e.g. 0.485,0.456,0.406"),
    "std": Opt(("--std",), "per-channel std, e.g. 0.229,0.224,0.225"),
    "bgr": Opt(("--bgr",), "the model takes BGR channel order"),
    "scale": Opt(("--scale",), "pixel multiplier before mean/std (default 1/255)"),
    "csi": Opt(("--csi",), "Jetson CSI camera sensor id (builds the nvarguscamerasrc pipeline)"),
    "show": Opt(("--show",), "open a window with the overlay (q quits)"),
    "save": Opt(("--save",), "write the annotated video here (.mp4 or .avi)"),
    "smooth": Opt(("--smooth",), "average the last N frames' probabilities", min=1),
    "topk": Opt(("--topk",), "show the top K classes", min=1),
    "realtime": Opt(("--realtime",), "play video files at their frame rate, dropping frames"),
    "max_frames": Opt(("--max-frames",), "stop after N frames", min=1),
    "reconnects": Opt(("--reconnects",),
                      "reopen a dropped camera/stream up to N times in a row (backoff 0.5 s doubling to 8 s)", min=0),
    "trt_fp16": Opt(("--trt-fp16",), "TensorRT: allow fp16 kernels"),
    "trt_int8": Opt(("--trt-int8",), "TensorRT: INT8 (symmetric QDQ models: catdog-export --int8-for tensorrt)"),
    "trt_cache": Opt(("--trt-cache",), "TensorRT engine cache folder"),
    "device_id": Opt(("--device-id",), "GPU to run on (CUDA / TensorRT providers)", min=0),
    "unsure_below": Opt(("--unsure-below",), "label a photo or frame 'unsure' when its top (calibrated) "
                        "probability is below this, e.g. 0.8", min=0.0, max=1.0),
    "full_decode": Opt(("--full-decode",), "decode JPEGs at full size (default: libjpeg's 1/2, 1/4 or 1/8 scale "
                       "when the photo is still at least the model's resize; 2-3x faster on phone photos)"),
    "ray": Opt(("--ray",), "classify on Ray: alone, a local Ray; with HOST:6379, ray://HOST:10001 or auto, "
               "join that cluster (runtime/scale.py)"),
    "out": Opt(("--out",), "--ray: folder of Parquet part files for the results"),
    "resume": Opt(("--resume",), "--ray: skip the inputs already in --out"),
    "actors": Opt(("--actors",), "--ray: actors (default: CPUs / --threads, or GPUs)", min=1),
    "gpus_per_actor": Opt(("--gpus-per-actor",), "--ray with --provider cuda", min=0.01),
}


def option_types() -> dict[str, type]:
    """RunOptions' field -> its value type (Optional[X] -> X)."""
    hints = typing.get_type_hints(RunOptions)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in fields(RunOptions)}


def quick_options(argv: list[str]) -> tuple[RunOptions, bool] | None:
    """(options, --debug) for a plain command line: one SOURCE and options from OPTIONS spelled as
    separate tokens, each at most once, values in range. None for anything else (typer's job)."""
    types, by_flag = option_types(), {f: name for name, o in OPTIONS.items() for f in o.flags}
    given: dict[str, Any] = {}
    debug, i = False, 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--debug" and not debug:
            debug, i = True, i + 1
            continue
        if not tok.startswith("-") and "source" not in given:
            given["source"], i = tok, i + 1
            continue
        name = by_flag.get(tok)
        if name is None or name in given:
            return None
        if types[name] is bool:
            given[name], i = True, i + 1
            continue
        if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            return None
        try:
            value = types[name](argv[i + 1])
        except ValueError:
            return None
        o = OPTIONS[name]
        if (o.min is not None and value < o.min) or (o.max is not None and value > o.max):
            return None
        given[name], i = value, i + 2
    return (RunOptions(**given), debug) if "source" in given else None


def _run_batch(batch: int, src: Any) -> int:
    """The largest batch this run feeds: live sources go frame by frame, files up to --batch."""
    return max(1, min(batch, len(src.files))) if src.kind == "files" else 1


def spec_overrides(o: RunOptions) -> dict[str, Any]:
    """--size/--mean/--std/--bgr/--scale as Classifier.from_file's spec overrides (the given ones)."""
    overrides = {"size": o.size, "mean": _floats3(o.mean, "--mean"), "std": _floats3(o.std, "--std"),
                 "channel_order": "BGR" if o.bgr else None, "scale": o.scale}
    return {k: v for k, v in overrides.items() if v is not None}


def _outputs(o: RunOptions, src: Any) -> tuple[Path | None, Path | None]:
    """--csv and --save checked (runtime.files.check_output_file): never an input, a folder or a
    read-only file. --save applies to frame sources only (image runs ignore it, and say so)."""
    from catdog.runtime.files import check_output_file

    inputs = src.files if src.kind == "files" else (src.target,) if src.kind == "video" else ()
    csv_path = check_output_file(o.csv_path, inputs, "--csv") if o.csv_path else None
    save_path = check_output_file(o.save, inputs, "--save") if o.save and src.kind != "files" else None
    if csv_path and save_path and csv_path.resolve() == save_path.resolve():
        raise InputError(f"--csv and --save are the same file ({o.save}); give each its own")
    return csv_path, save_path


def run(o: RunOptions) -> int:
    if o.ray is not None or o.out is not None or o.resume or o.actors is not None:
        from catdog.runtime.scale import run_scaled  # ray is imported on this path only

        return run_scaled(o)
    from catdog.runtime.classifier import Classifier
    from catdog.runtime.shipped import resolve_model
    from catdog.runtime.sinks import AccuracySink, CsvSink, JsonSink, TableSink
    from catdog.runtime.sources import GST_PREFIX, csi_pipeline, open_source

    source = GST_PREFIX + csi_pipeline(o.csi) if o.csi is not None else o.source
    if not source:
        raise InputError("give a SOURCE (image, folder, glob, video, camera index, URL or gst:PIPELINE) or --csi N")
    src = open_source(source, recursive=o.recursive)  # before loading the model: a typo fails fast
    csv_path, save_path = _outputs(o, src)  # and every output path, before the first photo
    clf = Classifier.from_file(resolve_model(o.model, o.provider), provider=o.provider, threads=o.threads,
                               labels=o.labels, spec=spec_overrides(o),
                               batch_size=_run_batch(o.batch, src), workers=o.workers, trt_fp16=o.trt_fp16,
                               trt_int8=o.trt_int8, trt_cache_dir=o.trt_cache, device_id=o.device_id,
                               unsure_below=o.unsure_below, full_decode=o.full_decode,
                               spinning=not (src.kind == "files" and len(src.files) > 1))  # see open_session
    sinks: list[Any] = [JsonSink()] if o.json_out else []
    if csv_path:
        sinks.append(CsvSink(csv_path, clf.classes))

    clf.reset_times()
    if src.kind == "files":
        if o.show or o.save:
            say("note: --show and --save apply to videos, cameras and streams; ignored for image files")
        if not o.json_out:
            sinks.insert(0, TableSink(o.topk))
        accuracy = AccuracySink(clf.classes)
        stop = _run_files(clf, src.files, [*sinks, accuracy])
        for sink in sinks:
            sink.close()
        title = f"interrupted ({interrupt_reason(stop)})" if stop else f"{len(src.files)} file(s)"
        _summary(clf, title, accuracy.summary_rows())
    else:
        from catdog.runtime.live import LiveOptions, run_live

        live = LiveOptions(show=o.show, save=save_path, smooth=o.smooth, topk=o.topk, realtime=o.realtime,
                           max_frames=o.max_frames, max_reconnects=o.reconnects)
        res = run_live(clf, src, live, sinks, log=say)
        stop = res.interrupted
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
    if stop:
        return interrupt_exit(stop)
    return EXIT_SOME_FAILED if clf.times.failed else 0


def ray_alone(args: list[str]) -> list[str]:
    """`--ray` without an ADDRESS means a local Ray. Options with an optional value exist in neither
    parser, so a bare `--ray` (last, or before another option) becomes `--ray local`, as click reads one."""
    out: list[str] = []
    for i, a in enumerate(args):
        out += [a, LOCAL_RAY] if a == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")) else [a]
    return out


def main() -> None:
    argv = ray_alone(sys.argv[1:])
    quick = quick_options(argv)
    if quick is None:
        from catdog.runtime.cli_app import app  # typer: --help, other spellings, usage errors

        app(args=argv)
        return
    opts, debug = quick
    stop_on_sigterm()
    try:
        code = run(opts)
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001 - the same boundary as the typer path
        code = failure_exit(e, debug)
    sys.exit(code)


if __name__ == "__main__":
    main()
