"""One `catdog-runtime` run, as the library does it: open the source, check every output path,
load the model, classify files (batched, decoded in threads) or frames (live), close the outputs,
print the summary; --ray hands over to runtime/scale/. The command line (runtime/cli/) only
parses into RunOptions and calls run(). Heavy imports happen inside run(): cold start."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from catdog.runtime.engine.stats import model_line, summary_text
from catdog.runtime.options import RunOptions, read_paths, spec_flags
from catdog.runtime.spine.boundary import interrupt_exit, interrupt_reason, say, signals_deferred
from catdog.runtime.spine.errors import InputError

if TYPE_CHECKING:  # imported inside run(), or on the --ray / --serve path only: cold start
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.live.sinks import Sink
    from catdog.runtime.live.sources import Source
    from catdog.runtime.scale.options import ScaleOptions
    from catdog.runtime.serve.options import ServeOptions
    from catdog.runtime.serve.server import Serving

EXIT_SOME_FAILED = 1


def _summary(clf: Classifier, title: str, extra: Sequence[tuple[str, str]] = ()) -> None:
    rows = [("model", model_line(clf)), ("provider", clf.session.provider), *clf.times.summary_rows(), *extra]
    print(summary_text(title, rows), file=sys.stderr, flush=True)


def _run_files(clf: Classifier, files: tuple[Path, ...], sinks: list[Sink]) -> KeyboardInterrupt | None:
    """Returns the Ctrl-C / SIGTERM that stopped it, if one did. Progress on stderr only for an
    interactive terminal."""
    if len(files) < 2 or not sys.stderr.isatty():  # no progress bar: skip importing rich for it
        try:
            for source, result in clf.iter_predict(files):
                with signals_deferred():  # each result reaches every output, or none does
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
                with signals_deferred():  # each result reaches every output, or none does
                    for sink in sinks:
                        sink.add(source, result)
                bar.advance(task)
        except KeyboardInterrupt as e:
            return e
    return None


def _run_batch(batch: int, src: Source) -> int:
    """The largest batch this run feeds: live sources go frame by frame, files up to --batch."""
    return max(1, min(batch, len(src.files))) if src.kind == "files" else 1


def _inputs(o: RunOptions, src: Source) -> list[Path]:
    """Every file the run reads: the images or the video, the files the options name (--model,
    --labels, ...), and the shipped models (what --model NAME or no --model opens)."""
    from catdog.runtime.engine.shipped import SHIPPED, shipped_model
    from catdog.runtime.spine.errors import CatdogError

    files = [*src.files] if src.kind == "files" else [Path(str(src.target))] if src.kind == "video" else []
    for name in SHIPPED:
        try:
            files.append(shipped_model(name))
        except CatdogError:  # not in this install: nothing there to protect
            pass
    return files + read_paths(o)


def _outputs(o: RunOptions, src: Source) -> tuple[Path | None, Path | None]:
    """--csv and --save checked (spine.fileio.check_output_file): never an input (_inputs), a folder
    or a read-only file. --save applies to frame sources only (image runs ignore it, and say so)."""
    from catdog.runtime.spine.fileio import check_output_file

    inputs = _inputs(o, src)
    csv_path = check_output_file(o.csv_path, inputs, "--csv") if o.csv_path else None
    save_path = check_output_file(o.save, inputs, "--save") if o.save and src.kind != "files" else None
    if csv_path and save_path and csv_path.resolve() == save_path.resolve():
        raise InputError(f"--csv and --save are the same file ({o.save}); give each its own")
    return csv_path, save_path


def run(o: RunOptions) -> int:
    if o.ray is not None or o.out is not None or o.resume or o.actors is not None:
        from catdog.runtime.scale.driver import run_scaled  # ray is imported on this path only

        return run_scaled(scale_options(o))
    from catdog.runtime.live.sources import GST_PREFIX, csi_pipeline, open_source

    serve, serve_plan = serve_options(o) if o.serve is not None else None, None
    if serve is not None:  # the [serve] extra, the address and the token, before anything loads
        from catdog.runtime.serve.server import plan

        serve_plan = plan(serve, say)
    source = GST_PREFIX + csi_pipeline(o.csi) if o.csi is not None else o.source
    if not source and serve is None:
        raise InputError("give a SOURCE (image, folder, glob, video, camera index, URL or gst:PIPELINE) or --csi N")
    src = open_source(source, recursive=o.recursive) if source else None  # before the model: a typo fails fast
    csv_path, save_path = _outputs(o, src) if src else (None, None)  # every output path, before the first photo
    clf = _classifier(o, src)
    serving = None
    if serve is not None:
        from catdog.runtime.serve.server import start

        serving = start(serve, clf, model_line(clf), src.shown if src else None, say, serve_plan)
    try:
        if src is None:
            assert serving is not None  # no SOURCE only with --serve (checked above)
            return _api_only(clf, serving)
        if src.kind == "files":
            return _files(o, clf, src, csv_path, serving)
        return _live(o, clf, src, csv_path, save_path, serving)
    finally:
        if serving is not None:
            serving.stop()


def scale_options(o: RunOptions) -> ScaleOptions:
    """What a --ray run reads of the run's options; refuses the flags that do not apply to one."""
    from catdog.runtime.scale.options import ScaleOptions  # the --ray path only: cold start

    if o.ray is None:
        raise InputError("--out, --resume, --actors and --gpus-per-actor go with --ray")
    if o.out is None:
        raise InputError("--ray needs --out FOLDER: results are written there as Parquet part files")
    off = [flag for flag, given in (("--json", o.json_out), ("--csv", o.csv_path), ("--csi", o.csi is not None),
                                    ("--show", o.show), ("--save", o.save), ("--realtime", o.realtime),
                                    ("--max-frames", o.max_frames), ("--trt-fp16", o.trt_fp16),
                                    ("--trt-int8", o.trt_int8), ("--trt-cache", o.trt_cache)) if given]
    if off:
        raise InputError(f"{', '.join(off)}: not for --ray runs (results go to --out as Parquet; "
                         "image files only)")
    if not o.source:
        raise InputError("give a SOURCE: a folder, a glob, a list file (.txt) or a URI")
    return ScaleOptions(address=o.ray, source=o.source, out=o.out, resume=o.resume, recursive=o.recursive,
                        model=o.model, provider=o.provider, labels=o.labels, spec=spec_flags(o), batch=o.batch,
                        threads=o.threads, workers=o.workers, actors=o.actors, gpus_per_actor=o.gpus_per_actor,
                        device_id=o.device_id, unsure_below=o.unsure_below, full_decode=o.full_decode)


def serve_options(o: RunOptions) -> ServeOptions:
    """What --serve reads of the run's options; for a run with --serve."""
    from catdog.runtime.serve.options import ServeOptions  # the --serve path only: cold start

    if o.serve is None:
        raise ValueError("serve_options: the options have no --serve")
    return ServeOptions(address=o.serve, token=o.token, token_file=o.token_file, no_auth=o.no_auth,
                        allow_host=o.allow_host, max_viewers=o.max_viewers, stream_fps=o.stream_fps,
                        max_body_mb=o.max_body_mb, request_timeout=o.request_timeout, idle_timeout=o.idle_timeout,
                        batch_wait_ms=o.batch_wait_ms, cors=o.cors)


def _classifier(o: RunOptions, src: Source | None) -> Classifier:
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.engine.shipped import resolve_model

    many = src is not None and src.kind == "files" and len(src.files) > 1
    return Classifier.from_file(resolve_model(o.model, o.provider), provider=o.provider, threads=o.threads,
                                labels=o.labels, spec=spec_flags(o).overrides(),
                                batch_size=_run_batch(o.batch, src) if src else o.batch, workers=o.workers,
                                trt_fp16=o.trt_fp16, trt_int8=o.trt_int8, trt_cache_dir=o.trt_cache,
                                device_id=o.device_id, unsure_below=o.unsure_below, full_decode=o.full_decode,
                                spinning=not many)  # see open_session


def _sinks(o: RunOptions, clf: Classifier, csv_path: Path | None) -> list[Sink]:
    from catdog.runtime.live.sinks import CsvSink, JsonSink

    sinks: list[Sink] = [JsonSink()] if o.json_out else []
    if csv_path:
        sinks.append(CsvSink(csv_path, clf.classes))
    clf.reset_times()
    return sinks


def _files(o: RunOptions, clf: Classifier, src: Source, csv_path: Path | None, serving: Serving | None) -> int:
    from catdog.runtime.live.sinks import AccuracySink, TableSink

    sinks = _sinks(o, clf, csv_path)
    if o.show or o.save:
        say("note: --show and --save apply to videos, cameras and streams; ignored for image files")
    if o.timings:
        say("note: --timings applies to videos, cameras and streams; ignored for image files")
    if not o.json_out:
        sinks.insert(0, TableSink(o.topk))
    accuracy = AccuracySink(clf.classes)
    extra = [serving.sink()] if serving else []
    stop = _run_files(clf, src.files, [*sinks, accuracy, *extra])
    for sink in sinks:
        sink.close()
    title = f"interrupted ({interrupt_reason(stop)})" if stop else f"{len(src.files)} file(s)"
    _summary(clf, title, accuracy.summary_rows() + _served(serving))
    if stop:
        return interrupt_exit(stop)
    return EXIT_SOME_FAILED if clf.times.failed else 0


def _live(o: RunOptions, clf: Classifier, src: Source, csv_path: Path | None, save_path: Path | None,
          serving: Serving | None) -> int:
    from catdog.runtime.live.loop import LiveOptions, run_live

    sinks = _sinks(o, clf, csv_path)
    live = LiveOptions(show=o.show, save=save_path, smooth=o.smooth, topk=o.topk, realtime=o.realtime,
                       max_frames=o.max_frames, max_reconnects=o.reconnects, timings=o.timings,
                       on_frame=serving.on_frame if serving else None)
    res = run_live(clf, src, live, sinks, log=say)
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
    _summary(clf, f"{src.kind} {src.shown}", extra + _served(serving))
    if res.interrupted:
        return interrupt_exit(res.interrupted)
    return EXIT_SOME_FAILED if clf.times.failed else 0


def _api_only(clf: Classifier, serving: Serving) -> int:
    """--serve without SOURCE: the API alone, until Ctrl-C or SIGTERM."""
    import time

    try:
        while serving.thread.is_alive():
            time.sleep(0.2)
    except KeyboardInterrupt as e:
        _summary(serving.batcher.clf, f"interrupted ({interrupt_reason(e)})", _served(serving))
        return interrupt_exit(e)
    raise InputError(f"the server on {serving.url} stopped by itself; see the lines above")


def _served(serving: Serving | None) -> list[tuple[str, str]]:
    if serving is None:
        return []
    b, hub = serving.batcher, serving.hub
    return [("served", f"{serving.url}: {b.items} API prediction(s) in {b.batches} batch(es), "
                       f"{hub.encoded} stream frame(s) encoded")]
