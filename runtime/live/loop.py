"""The frame loop for videos, cameras and streams: capture -> preprocess -> inference ->
postprocess -> overlay / window / saved video / JSON, with per-stage timing, frame age and dropped
frames. Stops on end of file, --max-frames, q in the window or Ctrl-C, and always releases the
camera, the window, the writer and the capture thread."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.engine.stats import Timer
from catdog.runtime.live.capture import STREAM_TIMEOUT_S, FileReader, LatestFrameReader, describe, open_capture
from catdog.runtime.live.gst import GST_START_TIMEOUT_S
from catdog.runtime.live.sinks import JsonSink
from catdog.runtime.live.sources import Source
from catdog.runtime.live.video import Smoother, VideoSaver, draw_overlay
from catdog.runtime.live.window import Window
from catdog.runtime.spine.boundary import signals_deferred
from catdog.runtime.spine.errors import ModelError, OutputError
from catdog.runtime.spine.records import joined


@dataclass(frozen=True)
class LiveOptions:
    show: bool = False
    save: Path | None = None
    smooth: int = 1
    topk: int = 1
    realtime: bool = False
    max_frames: int | None = None
    max_reconnects: int = 10
    status_every_s: float = 1.0  # the stderr status line (when not writing JSON)
    timings: bool = False  # --timings: each JSON line gets this frame's `timings` (TIMING_KEYS)
    # Every frame, annotated, to a watcher (--serve): (image, prediction, name, index, fps, stage ms),
    # the stage ms being this frame's: capture wait, decode, preprocess, inference, frame age
    on_frame: Callable[..., None] | None = None


# --timings: this frame's figures in ms, each JSON line's "timings" object. wait_ms: the classifier
# waiting for the camera's next frame; decode_ms: the capture thread's CPU time on the frame (FFmpeg
# decodes there, GStreamer in its own threads; a video file: the wall time of reading it);
# preprocess_ms: resize, crop, normalize; inference_ms: the session run; age_ms: from the frame's
# arrival in the capture thread to its label.
TIMING_KEYS = ("wait_ms", "decode_ms", "preprocess_ms", "inference_ms", "age_ms")
LIVE_NOTES = {"capture wait": "waiting for the camera's next frame",
              "decode": "CPU of the capture thread; GStreamer decodes in its own threads",
              "frame age": "arrival in the capture thread to label"}


@dataclass
class LiveResult:
    frames: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    interrupted: KeyboardInterrupt | None = None  # the Ctrl-C or SIGTERM that stopped the run
    saved: Path | None = None
    save_error: str | None = None
    stop_reason: str = ""


def _reader(source: Source, opts: LiveOptions, log: Callable[[str], None]) -> Any:
    if source.kind == "video" and not opts.realtime:
        return FileReader(source)
    fps = None
    if source.kind in ("stream", "pipeline"):  # opening waits for the first frame, silently
        limit = GST_START_TIMEOUT_S if source.kind == "pipeline" else STREAM_TIMEOUT_S
        log(f"{describe(source)}: connecting; waiting for the stream to answer (up to {limit:.0f} s per attempt)")
    if source.kind == "video":  # --realtime: play the file at its frame rate, drop what we can't keep up with
        probe = FileReader(source)
        fps = probe.fps or 25.0
        probe.close()
    return LatestFrameReader(lambda: open_capture(source), describe(source), reconnect=source.is_live,
                             max_reconnects=opts.max_reconnects, pace_fps=fps, log=log).start()


def run_live(clf: Classifier, source: Source, opts: LiveOptions, sinks: list[Any],
             log: Callable[[str], None] | None = None) -> LiveResult:
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    times, res = clf.times, LiveResult()
    window = Window() if opts.show else None  # fails before the camera opens if there is no GUI
    reader = _reader(source, opts, log)
    saver = None
    if opts.save:
        saver = VideoSaver(opts.save, getattr(reader, "fps", 0.0) or 25.0)
    smoother = Smoother(opts.smooth)
    fps, last_t, last_status = 0.0, time.perf_counter(), 0.0
    frames = iter(reader)
    if isinstance(reader, LatestFrameReader):
        times.notes.update(LIVE_NOTES)
    try:
        while True:
            with Timer() as tw:
                frame = next(frames, None)
            if frame is None:
                res.stop_reason = "end of input"
                break
            wait_s = frame.wait_s if frame.wait_s else max(0.0, tw.s - frame.decode_s)
            times.add("capture wait", wait_s)
            times.add("decode", frame.decode_s)
            with Timer() as tp:
                crop = clf.prepare(frame.image)
            times.add("preprocess", tp.s, 0)
            probs = clf.infer_crops([crop])[0]
            with Timer() as tq:
                pred = clf.prediction(smoother(probs))
            times.add("postprocess", tq.s, 0)
            age_s = time.perf_counter() - frame.t_capture
            times.frame_ages.append(age_s)
            frame_ms = {"capture wait": 1e3 * wait_s, "decode": 1e3 * frame.decode_s,
                        "preprocess": 1e3 * tp.s + _last(times, "preprocess"),
                        "inference": _last(times, "inference"), "frame age": 1e3 * age_s}
            times.items += 1
            res.frames += 1
            res.labels[pred.label] += 1
            now = time.perf_counter()
            fps = 0.9 * fps + 0.1 / max(now - last_t, 1e-6) if fps else 1.0 / max(now - last_t, 1e-6)
            last_t = now
            name = f"{source.shown}#{frame.index}"
            with signals_deferred():  # a frame reaches every output (lines, CSV, the saved video) or none
                for sink in sinks:
                    if opts.timings and isinstance(sink, JsonSink):
                        sink.add(name, pred, {"timings": timings_of(frame_ms)})
                    else:
                        sink.add(name, pred)
                if window or saver or opts.on_frame:
                    stage_ms = {s: times.recent_ms(s) for s in ("decode", "preprocess", "inference")}
                    draw_overlay(frame.image, pred, fps, stage_ms, opts.topk)
                    if saver:
                        saver.write(frame.image)
                    if opts.on_frame:
                        opts.on_frame(frame.image, pred, name, frame.index, fps, frame_ms)
            if window and not window.show(frame.image):
                res.stop_reason = "q pressed"
                break
            if not sinks and now - last_status >= opts.status_every_s:
                last_status = now
                log(f"frame {frame.index}: {pred.label} {pred.score:.2f} | {fps:.1f} FPS | "
                    f"dropped {getattr(reader, 'dropped', 0)}")
            if opts.max_frames and res.frames >= opts.max_frames:
                res.stop_reason = f"--max-frames {opts.max_frames}"
                break
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (boundary.Terminated): the same clean stop
        res.interrupted, res.stop_reason = e, getattr(e, "reason", "Ctrl-C")
    except ModelError as e:  # NaN/inf scores: stop with the error, outputs still closed and complete
        res.error, res.stop_reason = str(e), "model error"
    finally:
        _release(reader, window, saver, res)
    times.dropped = getattr(reader, "dropped", 0)
    if isinstance(reader, LatestFrameReader):
        times.captured = reader.captured
    failure = joined(source.shown, [("model", res.error), ("stream", getattr(reader, "error", None)),
                                     ("output", res.save_error)])
    res.error = failure.message if failure else None
    if failure:
        times.failed += 1
        for sink in sinks:
            sink.add(source.shown, failure)
    return res


def _last(times: Any, stage: str) -> float:
    """The stage's ms on the item just timed (0 if it has none)."""
    r = times.recent.get(stage)
    return float(r[-1]) if r else 0.0


def timings_of(frame_ms: dict[str, float]) -> dict[str, float]:
    """One frame's stage figures as the JSON `timings` object (TIMING_KEYS), rounded to 0.01 ms."""
    names = ("capture wait", "decode", "preprocess", "inference", "frame age")
    return {k: round(frame_ms[n], 2) for k, n in zip(TIMING_KEYS, names, strict=True)}


def _release(reader: Any, window: Any, saver: Any, res: LiveResult) -> None:
    if isinstance(reader, LatestFrameReader):
        reader.stop()
    else:
        reader.close()
    if window:
        window.close()
    if saver:
        try:
            saver.close(keep=True)
            res.saved = saver.path if saver.frames else None
        except OutputError as e:  # reported with the summary, like a dropped stream
            res.save_error = str(e)
