"""End-to-end video pipeline: decode -> preprocess -> infer -> post, per stage, sync vs pipelined.

Both modes use the runtime's own classes (open_source + FileReader decode every frame in order;
Classifier.prepare does the geometry, Classifier.infer_crops the normalize / session.run / softmax
and times them into its StageTimes; Classifier.prediction the label). Sync: one thread does all
stages. Pipelined: a decode thread (FileReader + prepare) feeds a bounded queue, the main thread
infers; FPS rises toward 1 / max(stage) instead of 1 / sum(stages)."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from catdog.runtime.errors import InputError
from catdog.runtime.spec import PreprocessSpec

END = object()


def _reader(video: Path) -> Any:
    from catdog.runtime.capture import FileReader
    from catdog.runtime.sources import open_source

    src = open_source(str(video))
    if src.kind != "video":
        raise InputError(f"{video}: not a video file (got a {src.kind} source)")
    return FileReader(src)


def _stage_row(mode: str, clf: Any, frames: int, decode_s: float, resize_s: float, wall_s: float) -> dict[str, Any]:
    t = clf.times
    per = lambda s: 1e3 * s / max(frames, 1)  # noqa: E731 - ms per frame
    return {
        "mode": mode, "frames": frames,
        "decode_ms": per(decode_s),
        "preprocess_ms": per(resize_s + t.totals.get("preprocess", 0.0)),  # resize/crop + normalize
        "infer_ms": per(t.totals.get("inference", 0.0)),
        "post_ms": per(t.totals.get("postprocess", 0.0)),
        "fps": frames / wall_s if wall_s > 0 else 0.0,
        "wall_s": wall_s,
    }


def run_sync(clf: Any, video: Path, max_frames: int | None) -> dict[str, Any]:
    from catdog.runtime.stats import StageTimes

    clf.times = StageTimes()
    reader = _reader(video)
    n, decode_s, resize_s = 0, 0.0, 0.0
    t0 = time.perf_counter()
    try:
        for frame in reader:
            decode_s += frame.decode_s
            t1 = time.perf_counter()
            crop = clf.prepare(frame.image)
            resize_s += time.perf_counter() - t1
            clf.prediction(clf.infer_crops([crop])[0])
            n += 1
            if max_frames and n >= max_frames:
                break
    finally:
        reader.close()
    return _stage_row("sync", clf, n, decode_s, resize_s, time.perf_counter() - t0)


def run_pipelined(clf: Any, video: Path, max_frames: int | None, depth: int = 4) -> dict[str, Any]:
    from catdog.runtime.stats import StageTimes

    clf.times = StageTimes()
    q: queue.Queue = queue.Queue(maxsize=depth)
    stats = {"decode": 0.0, "resize": 0.0, "error": None}
    stop = threading.Event()

    def produce() -> None:
        reader = None
        try:
            reader = _reader(video)
            for i, frame in enumerate(reader):
                if stop.is_set() or (max_frames and i >= max_frames):
                    break
                stats["decode"] += frame.decode_s
                t1 = time.perf_counter()
                crop = clf.prepare(frame.image)
                stats["resize"] += time.perf_counter() - t1
                q.put(crop)
        except Exception as e:  # surfaced in the consumer; a dead producer must not hang it
            stats["error"] = e
        finally:
            if reader is not None:
                reader.close()
            q.put(END)

    t0 = time.perf_counter()
    th = threading.Thread(target=produce, name="decode", daemon=True)
    th.start()
    n = 0
    while (crop := q.get()) is not END:
        clf.prediction(clf.infer_crops([crop])[0])
        n += 1
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if isinstance(stats["error"], Exception):
        raise stats["error"]
    return _stage_row("pipelined (decode thread + inference)", clf, n, stats["decode"], stats["resize"], wall)


def pipeline_section(primary: Any, cfg: Any, spec: PreprocessSpec, max_frames: int | None = 300) -> dict[str, Any]:
    from catdog.runtime.classifier import Classifier

    video = Path(cfg.video)
    if not video.is_file():
        raise InputError(f"{video}: no such video file")
    threads = next((t for t in cfg.threads if t), None)
    clf = Classifier.from_file(primary.path, provider="cpu", threads=threads, batch_size=1, workers=1, log=None)
    clf.infer_crops([clf.prepare(np.zeros((spec.size, spec.size, 3), np.uint8))])  # warm-up
    rows = [run_sync(clf, video, max_frames), run_pipelined(clf, video, max_frames)]
    if rows[0]["frames"] == 0:
        raise InputError(f"{video}: no frames could be decoded")
    rows[1]["speedup_vs_sync"] = rows[1]["fps"] / rows[0]["fps"]
    rows[0]["speedup_vs_sync"] = 1.0
    return {"about": f"{video.name}, up to {max_frames} frames, batch 1, {primary.name} on CPU threads "
                     f"{threads or 'default'}; stage times are ms per frame (in pipelined mode decode overlaps inference).",
            "rows": rows}
