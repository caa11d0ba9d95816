"""The Python API: `Classifier.from_file(model).predict(photo)`. Class names and preprocessing come
from the metadata embedded in the ONNX file; third-party models get them from labels + flags.
Folders run batched with parallel decode, results in input order, a bad file never stops a run."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np

from catdog.runtime.engine import fit
from catdog.runtime.engine.session import Session, open_session
from catdog.runtime.engine.stats import StageTimes, Timer
from catdog.runtime.spine.boundary import say
from catdog.runtime.spine.errors import CatdogError, InputError, ModelError, error_line
from catdog.runtime.spine.images import ARRAY, CLASSIFY, check_size, decode_image, read_image
from catdog.runtime.spine.labels import load_labels
from catdog.runtime.spine.metadata import ModelMetadata
from catdog.runtime.spine.metrics import softmax
from catdog.runtime.spine.preprocess import normalize, resize_crop
from catdog.runtime.spine.records import UNSURE, Failure, Prediction, Record
from catdog.runtime.spine.spec import PreprocessSpec

if TYPE_CHECKING:
    from concurrent.futures import Future

ImageLike = Union[str, os.PathLike, np.ndarray]
Loaded = Union[tuple[np.ndarray, float, float], Failure]  # a decoded crop with its decode and resize s, or why not


class Classifier:
    def __init__(self, session: Session, metadata: ModelMetadata, batch_size: int = 16, workers: int = 2,
                 unsure_below: float | None = None, full_decode: bool = False):
        if unsure_below is not None and not 0.0 < unsure_below <= 1.0:
            raise InputError(f"--unsure-below must be a probability in (0, 1], got {unsure_below}")
        self.unsure_below = unsure_below
        self.full_decode = full_decode  # True: JPEGs decode at full size (else libjpeg's reduced decode)
        self.session = session
        self.metadata = metadata
        self.classes = metadata.classes
        self.spec = metadata.spec
        self.baked = metadata.input_format == "uint8"
        self.workers = max(1, workers)
        batch_dim = session.input_shape[0] if session.input_shape else None
        # A graph exported with a fixed batch of 1 can only take one image per run.
        self.batch_size = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else max(1, batch_size)
        self.trust_logits = metadata.output == "logits" and metadata.arch != "third-party"
        self.temperature = metadata.temperature  # fitted on validation at training time (metadata schema 2)
        self.times = StageTimes()
        self._buf: np.ndarray | None = None
        self._output_checked = metadata.output != "probs"  # see infer_crops

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        provider: str = "auto",
        threads: int | None = None,
        labels: str | os.PathLike | Sequence[str] | None = None,
        spec: PreprocessSpec | Mapping[str, Any] | None = None,
        batch_size: int = 16,
        workers: int = 2,
        unsure_below: float | None = None,
        full_decode: bool = False,
        **session_kw: Any,
    ) -> "Classifier":
        """`labels`: a file or a list of names; `spec`: a full PreprocessSpec, or a dict of overrides
        (size, mean, std, channel_order, scale) applied to the model's own spec or ImageNet defaults."""
        path = Path(path)
        # A run feeds 1..batch_size images (a folder's last batch is short): TensorRT's profile covers that
        session_kw.setdefault("batches", (1, max(1, batch_size)))
        session = open_session(path, provider=provider, threads=threads, **session_kw)
        if session.metadata_error is not None:
            raise session.metadata_error
        meta = session.metadata  # parsed once, when the session was opened
        names = None
        if labels is not None:
            names = load_labels(labels) if isinstance(labels, (str, os.PathLike)) else tuple(labels)
        if meta is None:
            if names is None:
                raise ModelError(f"{path}: has no catdog-edge metadata (a third-party model?); pass --labels FILE "
                                 "with its class names, and --size/--mean/--std/--bgr/--scale if its "
                                 "preprocessing is not ImageNet's")
            full = spec if isinstance(spec, PreprocessSpec) else fit.third_party_spec(session, spec or {})
            fmt = "uint8" if session.input_dtype == np.uint8 else "float"
            meta = ModelMetadata(classes=names, spec=full, arch="third-party", input_format=fmt)
        else:
            if isinstance(spec, PreprocessSpec):
                meta = meta.with_(spec=spec)
            elif spec:
                meta = meta.with_(spec=fit.apply_overrides(meta.spec, spec))
            if names is not None:
                meta = meta.with_(classes=names)
        fit.check_fit(session, meta, labels_file=str(labels) if isinstance(labels, (str, os.PathLike)) else None)
        fit.warn_if_saturating(session, meta, session_kw.get("log", say))
        clf = cls(session, meta, batch_size=batch_size, workers=workers, unsure_below=unsure_below,
                  full_decode=full_decode)
        if meta.output == "probs":  # prove the claim before the first photo (or the server's first request)
            clf.infer_crops(np.full((1, meta.spec.size, meta.spec.size, 3), 128, np.uint8)), clf.reset_times()
        return clf

    def reset_times(self) -> StageTimes:
        """Start a fresh timing record (the clock starts now, not at model load)."""
        self.times = StageTimes()
        return self.times

    @property
    def decode_spec(self) -> PreprocessSpec | None:
        """What the spine's decoder gets: the model's spec (reduced JPEG decode), or None (full)."""
        return None if self.full_decode else self.spec

    # -- the stages -------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Decoded image -> uint8 (S, S, 3) crop (the spine's geometry)."""
        return resize_crop(image, self.spec)

    def load(self, source: ImageLike | bytes, name: str | None = None) -> tuple[np.ndarray, float, float]:
        """Path, encoded bytes (an upload, named `name`) or decoded image -> (crop, decode s, resize s), or
        InputError. The spine's one image-size guard (images.CLASSIFY) for the CLI, the API and --ray alike."""
        with Timer() as td:
            if isinstance(source, np.ndarray):
                check_size(source.shape[1], source.shape[0], name or _name(source), ARRAY)
            elif isinstance(source, (bytes, bytearray)):
                source = decode_image(bytes(source), name or "upload", self.decode_spec, CLASSIFY)
            image = source if isinstance(source, np.ndarray) else read_image(source, self.decode_spec, CLASSIFY)
        with Timer() as tp:
            crop = self.prepare(image)
        return crop, td.s, tp.s

    def infer_crops(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """uint8 crops -> probabilities (N, C). Times preprocess (stack + normalize), inference
        and postprocess (softmax) into self.times."""
        n = len(crops)
        with Timer() as tp:
            if isinstance(crops, np.ndarray) and crops.ndim == 4:
                batch = crops
            else:
                s = self.spec.size
                if self._buf is None or self._buf.shape[0] < n:
                    self._buf = np.empty((max(n, self.batch_size), s, s, 3), np.uint8)
                batch = np.stack(list(crops), out=self._buf[:n])
            feed = batch if self.baked else normalize(batch, self.spec)
            if feed.dtype != self.session.input_dtype:
                feed = feed.astype(self.session.input_dtype)
        self.times.add("preprocess", tp.s, n)
        with Timer() as ti:
            out = self.session.run(feed)
        self.times.add("inference", ti.s, n)
        if not self._output_checked:  # once: the metadata's output: probs, against what the model gives
            self._output_checked = fit.check_output_claim(self.session, self.metadata, np.asarray(out))
        with Timer() as tq:
            out = np.asarray(out, dtype=np.float32).reshape(n, -1)
            if (not self.trust_logits and fit.looks_like_probs(out)) or self.metadata.output == "probs":
                probs = out
            else:
                probs = softmax(out / self.temperature if self.temperature != 1.0 else out)
        self.times.add("postprocess", tq.s, n)
        return probs

    def _make(self, i: int, row: list[float]) -> Prediction:
        sure = self.unsure_below is None or row[i] >= self.unsure_below
        return Prediction(self.classes[i] if sure else UNSURE, i, row[i], dict(zip(self.classes, row, strict=True)))

    def prediction(self, probs_row: np.ndarray) -> Prediction:
        """Raises ModelError for NaN/inf scores: a confident label must never come from them."""
        if not np.isfinite(probs_row).all():
            raise ModelError(self._nonfinite())
        return self._make(int(np.argmax(probs_row)), probs_row.tolist())

    def _nonfinite(self) -> str:
        return (f"{self.session.path.name} gave NaN/inf scores (broken weights, or an input that overflows "
                "the model); re-export the model")

    def predictions(self, probs: np.ndarray) -> list[Record]:
        """One Prediction per row, or a model Failure (no source yet) for a row of NaN/inf scores."""
        with Timer() as t:
            rows, idx = probs.tolist(), probs.argmax(axis=1).tolist()
            finite = np.isfinite(probs).all(axis=1).tolist()
            preds: list[Record] = [self._make(i, r) if ok else Failure("model", self._nonfinite())
                                             for i, r, ok in zip(idx, rows, finite, strict=True)]
        self.times.add("postprocess", t.s, 0)
        return preds

    # -- the API ----------------------------------------------------------------------------------
    def predict(self, image: ImageLike) -> Prediction:
        """One photo (path or decoded BGR array) -> Prediction. Raises InputError for a bad file."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageLike]) -> list[Prediction]:
        preds: list[Prediction] = []
        for start in range(0, len(images), self.batch_size):
            crops = [self.load(im)[0] for im in images[start : start + self.batch_size]]
            for p in self.predictions(self.infer_crops(crops)):
                if isinstance(p, Failure):
                    raise ModelError(p.message)
                preds.append(p)
        return preds

    def predict_folder(self, folder: str | os.PathLike, *, recursive: bool = False
                       ) -> Iterator[tuple[str, Record]]:
        from catdog.runtime.spine.folders import list_images

        return self.iter_predict(list_images(Path(folder), recursive))

    def iter_predict(self, sources: Iterable[ImageLike]) -> Iterator[tuple[str, Record]]:
        """Yield (source, Prediction | Failure) in input order; a Failure's message names the source.
        Decoding and resizing run in `workers` threads (OpenCV releases the GIL) while the session
        runs the previous batch."""
        if isinstance(sources, (list, tuple)) and len(sources) == 1:
            # One photo: nothing to overlap, so no decode pool (concurrent.futures also imports
            # logging: ~8 ms of a one-photo cold start).
            yield from self._run_group([(_name(sources[0]), _Ready(_safe_load(self, sources[0])))])
            return
        from concurrent.futures import ThreadPoolExecutor

        bs = self.batch_size
        it = iter(sources)
        pending: deque[tuple[str, Future[Loaded]]] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            def fill() -> None:
                while len(pending) < 2 * bs + self.workers:
                    try:
                        src = next(it)
                    except StopIteration:
                        return
                    pending.append((_name(src), pool.submit(_safe_load, self, src)))

            try:
                fill()
                while pending:
                    group = [pending.popleft() for _ in range(min(bs, len(pending)))]
                    fill()  # keep the decoders busy while this batch runs
                    yield from self._run_group(group)
            finally:
                for _, fut in pending:
                    fut.cancel()

    def _run_group(self, group: Sequence[tuple[str, Future[Loaded] | _Ready]]) -> Iterator[tuple[str, Record]]:
        results: list[Loaded] = []
        with Timer() as tw:
            for _, fut in group:
                results.append(fut.result())
        self.times.add("capture wait", tw.s, len(group))
        crops = []
        for r in results:
            if not isinstance(r, Failure):
                crops.append(r[0])
                self.times.add("decode", r[1])
                self.times.add("preprocess", r[2], 0)
        preds = iter(self.predictions(self.infer_crops(crops)) if crops else [])
        for (name, _), r in zip(group, results, strict=True):
            rec = next(preds) if not isinstance(r, Failure) else r
            if isinstance(rec, Failure):  # unreadable, or NaN/inf scores: an error, never a label
                self.times.failed += 1
                msg = rec.message
                yield name, Failure(rec.kind, msg if msg.startswith(name) else f"{name}: {msg}", name)
            else:
                self.times.items += 1
                yield name, rec


class _Ready:
    """A load already done, in the shape of the Future _run_group waits on."""

    def __init__(self, value: Loaded):
        self.value = value

    def result(self) -> Loaded:
        return self.value


def _name(source: ImageLike) -> str:
    return "<array>" if isinstance(source, np.ndarray) else str(source)


def _safe_load(clf: Classifier, source: ImageLike) -> Loaded:
    try:
        return clf.load(source)
    except CatdogError as e:
        return Failure.of(e, _name(source))
    except Exception as e:  # noqa: BLE001 - one odd file (cv2.error, MemoryError) must not end a folder run
        return Failure("input", f"{source}: {type(e).__name__}: {error_line(e, last=True)}", _name(source))


