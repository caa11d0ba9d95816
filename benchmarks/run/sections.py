"""The in-process optional sections: accuracy and agreement per artifact (--data), the runtime's
per-image overhead over a bare session, and the end-to-end video pipeline (--video). Each takes the
run's Inputs and gives a report Section; folder throughput and cold start are in contenders.py.

Accuracy: every artifact sees the same photos through THE preprocess() (baked ones the same uint8
crops). Agreement with the reference (torch eager when given, else the fp32 ONNX) and logit /
probability differences come from catdog.export.verify.parity.figures, the export gates' own code, when it
can be imported (it needs torch); without it the section reports accuracy only and says so.

Overhead: Classifier.predict(decoded image) vs the bare preprocess() + session.run on the same
decoded frames, interleaved.

Video: both modes use the runtime's own classes (open_source + FileReader decode every frame in
order; Classifier.prepare does the geometry, Classifier.infer_crops the normalize / session.run /
softmax and times them into its StageTimes; Classifier.prediction the label). Sync: one thread does
all stages. Pipelined: a decode thread (FileReader + prepare) feeds a bounded queue, the main thread
infers; FPS rises toward 1 / max(stage) instead of 1 / sum(stages)."""

from __future__ import annotations

import queue
import statistics
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from catdog.benchmarks.common.config import BenchConfig, Log, LoopConfig
from catdog.benchmarks.common.schema import AccuracyRow, OverheadRow, PipelineRow, Section
from catdog.benchmarks.common.timing import interleaved
from catdog.benchmarks.grid.artifacts import Artifact, balanced, classes_of, input_images, make_batch
from catdog.benchmarks.grid.runners import make_runner
from catdog.runtime.spine.errors import DataError, InputError
from catdog.runtime.spine.folders import LabelledFolder
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.metrics import format_accuracy
from catdog.runtime.spine.spec import PreprocessSpec

if TYPE_CHECKING:
    from catdog.runtime.engine.classifier import Classifier

CHUNK = 16
END = object()


@dataclass(frozen=True)
class Inputs:
    """What every section of one run shares."""

    cfg: BenchConfig
    arts: tuple[Artifact, ...]
    spec: PreprocessSpec
    photos: LabelledFolder | None  # the --data folder, listed once, in the model's class order
    log: Log

    @property
    def primary(self) -> Artifact | None:
        """The artifact the runtime-facing sections use: fp32 ONNX, else the first float ONNX."""
        onnx = [a for a in self.arts if a.kind == "onnx"]
        return (next((a for a in onnx if a.name == "onnx-fp32"), None)
                or next((a for a in onnx if not a.uint8_input), None))

    @property
    def int8(self) -> Artifact | None:
        """The float-input INT8 ONNX beside the primary: the folder sections time both."""
        return next((a for a in self.arts if a.kind == "onnx" and a is not self.primary and not a.uint8_input
                     and (a.name == "onnx-int8" or (a.meta is not None and a.meta.precision == "int8"))), None)

    def need_primary(self) -> Artifact:
        if self.primary is None:
            raise ValueError("this section needs a float ONNX artifact")  # the section table checks first
        return self.primary

    def need_photos(self) -> LabelledFolder:
        if self.photos is None:
            raise ValueError("this section needs --data")  # the section table checks first
        return self.photos


def parity_figures() -> Callable[..., dict[str, Any]] | None:
    """export's figures(ref, got, labels) or None when export (or torch under it) is not importable."""
    try:
        from catdog.export.verify.parity import figures
    except ImportError:
        return None
    return figures


def logits_of(art: Artifact, images: list[np.ndarray], spec: PreprocessSpec, threads: int | None) -> np.ndarray:
    runner = make_runner(art, "cpu", threads)
    step = 1 if art.fixed_batch == 1 else CHUNK
    out = [runner.run(make_batch(art, images[i : i + step], spec)) for i in range(0, len(images), step)]
    return np.concatenate(out).astype(np.float32)


def accuracy_section(inp: Inputs) -> Section:
    if classes_of(inp.arts) is None:
        raise DataError("no artifact carries class names (catdog metadata); cannot score accuracy")
    photos = balanced(inp.need_photos(), inp.cfg.accuracy_limit)
    images = [read_image(p, inp.spec) for p in photos.paths]
    labels = np.asarray(photos.labels)  # indices into the model's classes: the folder was listed with them
    logits = {a.name: logits_of(a, images, inp.spec, inp.cfg.first_threads) for a in inp.arts}
    ref_name = next((n for n in ("torch-eager", "onnx-fp32") if n in logits), next(iter(logits)))
    figures = parity_figures()
    rows = []
    for a in inp.arts:
        got = logits[a.name]
        correct = int(np.sum(got.argmax(1) == labels))
        acc, text = correct / len(images), format_accuracy(correct, len(images))
        if figures is None:
            rows.append(AccuracyRow(a.name, len(images), acc, accuracy_ci95=text))
            continue
        f = figures(logits[ref_name], got, labels)
        rows.append(AccuracyRow(a.name, len(images), acc, f["top1_agreement"], f["max_abs_logit"],
                                f["max_abs_prob"], f["accuracy_drop"], text))
    about = f"{len(images)} photos from {inp.cfg.data}; reference for agreement: {ref_name}."
    if figures is None:
        about += " Agreement/differences n/a: catdog.export.verify.parity (needs torch) is not importable here."
    return Section(about, tuple(rows), reference=ref_name)


def overhead_section(inp: Inputs) -> Section:
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.spine.preprocess import preprocess

    primary, cfg, threads = inp.need_primary(), inp.cfg, inp.cfg.first_threads
    images, _ = input_images(inp.photos, 8, inp.spec)
    clf = Classifier.from_file(primary.path, provider="cpu", threads=threads, batch_size=1, workers=1, log=None)
    bare = make_runner(primary, "cpu", threads)
    state = {"i": 0}

    def frame() -> np.ndarray:
        state["i"] = (state["i"] + 1) % len(images)
        return images[state["i"]]

    loop = LoopConfig(warmup=cfg.loop.warmup, iters=cfg.loop.iters or LoopConfig.iters, block=cfg.loop.block)
    samples = interleaved({
        "bare preprocess + session.run": lambda: bare.run(preprocess(frame(), inp.spec)).argmax(1),
        "runtime Classifier.predict": lambda: clf.predict(frame()),
    }, loop)
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    base = med["bare preprocess + session.run"]
    rows = tuple(OverheadRow(k, v, v - base, v / base) for k, v in med.items())
    return Section(f"Per decoded image, batch 1, CPU threads {threads or 'default'}, {loop.iters} interleaved runs "
                   f"each on {primary.name}; overhead = runtime p50 - bare p50.", rows)


def _reader(video: Path) -> Any:
    from catdog.runtime.live.capture import FileReader
    from catdog.runtime.live.sources import open_source

    src = open_source(str(video))
    if src.kind != "video":
        raise InputError(f"{video}: not a video file (got a {src.kind} source)")
    return FileReader(src)


def _stage_row(mode: str, clf: Classifier, frames: int, decode_s: float, resize_s: float,
               wall_s: float) -> PipelineRow:
    totals = clf.times.totals

    def per(s: float) -> float:  # ms per frame
        return 1e3 * s / max(frames, 1)

    return PipelineRow(
        mode, frames, decode_ms=per(decode_s),
        preprocess_ms=per(resize_s + totals.get("preprocess", 0.0)),  # resize/crop + normalize
        infer_ms=per(totals.get("inference", 0.0)), post_ms=per(totals.get("postprocess", 0.0)),
        fps=frames / wall_s if wall_s > 0 else 0.0, wall_s=wall_s)


def run_sync(clf: Classifier, video: Path, max_frames: int | None) -> PipelineRow:
    clf.reset_times()
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


def run_pipelined(clf: Classifier, video: Path, max_frames: int | None, depth: int = 4) -> PipelineRow:
    clf.reset_times()
    q: queue.Queue = queue.Queue(maxsize=depth)
    stats: dict[str, Any] = {"decode": 0.0, "resize": 0.0, "error": None}
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
        except Exception as e:  # noqa: BLE001 - surfaced in the consumer; a dead producer must not hang it
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


def pipeline_section(inp: Inputs, max_frames: int | None = 300) -> Section:
    from catdog.runtime.engine.classifier import Classifier

    primary, threads, spec = inp.need_primary(), inp.cfg.first_threads, inp.spec
    video = Path(inp.cfg.video) if inp.cfg.video is not None else Path()
    if not video.is_file():
        raise InputError(f"{video}: no such video file")
    clf = Classifier.from_file(primary.path, provider="cpu", threads=threads, batch_size=1, workers=1, log=None)
    clf.infer_crops([clf.prepare(np.zeros((spec.size, spec.size, 3), np.uint8))])  # warm-up
    sync, piped = run_sync(clf, video, max_frames), run_pipelined(clf, video, max_frames)
    if sync.frames == 0:
        raise InputError(f"{video}: no frames could be decoded")
    rows = (replace(sync, speedup_vs_sync=1.0), replace(piped, speedup_vs_sync=piped.fps / sync.fps))
    return Section(f"{video.name}, up to {max_frames} frames, batch 1, {primary.name} on CPU threads "
                   f"{threads or 'default'}; stage times are ms per frame (in pipelined mode decode overlaps "
                   "inference).", rows)
