"""Where results go: a rich table, JSON lines, a CSV file (written atomically), and for video the
overlay, the --show window and the --save annotated video (written to a temp name, renamed at the end)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from collections import deque
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from catdog.runtime.classifier import Prediction
from catdog.runtime.errors import OutputError
from catdog.runtime.files import atomic_write, check_writable_dir
from catdog.runtime.folders import flat_label

Result = Prediction | str  # a Prediction, or the error message for that input


def text_name(text: str) -> str:
    """A file name (or a message holding one) as valid UTF-8 text: the bytes of a name that are not
    UTF-8, which Python keeps as surrogate escapes, become \\xNN (a UTF-8 stdout, JSON and CSV
    cannot hold them as they are)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_line(source: str, result: Result) -> str:
    """One JSON object. allow_nan=False: NaN is not JSON (the Classifier never lets one through)."""
    if isinstance(result, str):
        return json.dumps({"source": text_name(source), "error": text_name(result)}, ensure_ascii=False)
    return json.dumps({"source": text_name(source), "label": result.label, "score": float(result.score),
                       "probs": {k: float(v) for k, v in result.probs.items()}}, ensure_ascii=False,
                      allow_nan=False)


class JsonSink:
    """One JSON object per line on stdout, flushed so a pipe sees each result at once."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout

    def add(self, source: str, result: Result) -> None:
        self.out.write(json_line(source, result) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class CsvSink:
    """Collects rows and writes FILE once, atomically: an interrupted run never leaves half a CSV.
    One probability column per class when there are few classes; the top 5 as text otherwise."""

    MAX_CLASS_COLUMNS = 32

    def __init__(self, path: str | os.PathLike, classes: tuple[str, ...]):
        self.path = Path(path)
        check_writable_dir(self.path.parent if str(self.path.parent) else Path("."))  # fail before the run
        self.classes = classes
        self.rows: list[list[Any]] = []

    def _extra(self) -> list[str]:
        return [f"p_{c}" for c in self.classes] if len(self.classes) <= self.MAX_CLASS_COLUMNS else ["top5"]

    def add(self, source: str, result: Result) -> None:
        source = text_name(source)
        if isinstance(result, str):  # every row as wide as the header
            self.rows.append([source, "", "", "", text_name(result)] + [""] * len(self._extra()))
        elif len(self.classes) <= self.MAX_CLASS_COLUMNS:
            self.rows.append([source, result.label, result.index, f"{result.score:.6f}", ""]
                             + [f"{result.probs[c]:.6f}" for c in self.classes])
        else:
            top = "; ".join(f"{k}={v:.4f}" for k, v in result.top(5))
            self.rows.append([source, result.label, result.index, f"{result.score:.6f}", "", top])

    def close(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["source", "label", "index", "score", "error", *self._extra()])
        w.writerows(self.rows)
        atomic_write(self.path, buf.getvalue())


class TableSink:
    """A readable table on stdout at the end (rows keep input order). Plain aligned text, not rich:
    importing rich to print a few rows was ~40 ms of a one-photo run's cold start, and plain lines
    print the same on a terminal, in a pipe and under grep (a path is never folded)."""

    def __init__(self, topk: int = 1, stream: TextIO | None = None):
        self.topk = max(1, topk)
        self.stream = stream
        self.rows: list[tuple[str, Result]] = []

    def add(self, source: str, result: Result) -> None:
        self.rows.append((source, result))

    def lines(self) -> list[str]:
        head = ("source", "label" if self.topk == 1 else f"top {self.topk}", "score")
        cells: list[tuple[str, str, str]] = []
        for source, r in self.rows:
            source = _printable(source)
            if isinstance(r, str):
                cells.append((source, "error", _printable(r)))
                continue
            top = [(r.label, r.score)] if self.topk == 1 else r.top(self.topk)  # r.label may be 'unsure'
            for i, (label, p) in enumerate(top):  # top-k: one line per class
                cells.append((source if i == 0 else "", _printable(label), f"{p:.3f}"))
        w0 = max(len(c[0]) for c in [head, *cells])
        w1 = max(len(c[1]) for c in [head, *cells])
        # The score column is right-aligned to its header; an error message runs on past it.
        return [f"{a:<{w0}}  {b:<{w1}}  {c:>5}".rstrip() for a, b, c in [head, *cells]]

    def close(self) -> None:
        out = self.stream or sys.stdout
        out.write("\n".join(self.lines()) + "\n")
        out.flush()


def _printable(text: str) -> str:
    """A file name may hold a newline or an escape sequence: show it, never let it move the cursor."""
    text = text_name(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class AccuracySink:
    """When every classified file's name says its class (a class folder `dog/x.jpg`, or a Kaggle name
    `dog.12.jpg`), the summary gets the accuracy with its 95% Wilson interval. An `unsure` answer
    counts as not correct: abstaining is not being right."""

    def __init__(self, classes: tuple[str, ...]):
        self.classes = set(classes)
        self.correct = self.n = self.unsure = self.unlabelled = 0

    def _truth(self, source: str) -> str | None:
        p = Path(source)
        return p.parent.name if p.parent.name in self.classes else flat_label(p.name)

    def add(self, source: str, result: Result) -> None:
        if isinstance(result, str):
            return
        truth = self._truth(source)
        if truth not in self.classes:
            self.unlabelled += 1
            return
        self.n += 1
        self.correct += result.label == truth
        self.unsure += result.unsure

    def close(self) -> None:
        pass

    def summary_rows(self) -> list[tuple[str, str]]:
        from catdog.runtime.metrics import format_accuracy

        if not self.n or self.unlabelled:
            return []
        rows = [("accuracy", f"{format_accuracy(self.correct, self.n)}, labels from file/folder names")]
        return rows + ([("unsure", f"{self.unsure} of {self.n}")] if self.unsure else [])


class Smoother:
    """Mean of the last N probability vectors: steadies the label on live video."""

    def __init__(self, n: int):
        self.window: deque[np.ndarray] = deque(maxlen=max(1, n))

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        self.window.append(probs)
        return probs if len(self.window) == 1 else np.mean(self.window, axis=0)


def draw_overlay(frame: np.ndarray, pred: Prediction, fps: float, stage_ms: dict[str, float],
                 topk: int = 1) -> np.ndarray:
    """Label + score, FPS and per-stage ms drawn in place on a BGR frame."""
    import cv2

    h = frame.shape[0]
    scale = max(0.5, h / 720.0)
    lines = [f"{k}: {v:.2f}" for k, v in pred.top(max(1, topk))]
    if pred.unsure:
        lines[0] = f"unsure ({lines[0]})"
    lines.append(f"{fps:.1f} FPS")
    lines.append("  ".join(f"{k[:4]} {v:.1f}ms" for k, v in stage_ms.items()))
    y = int(30 * scale)
    for i, text in enumerate(lines):
        size = scale * (1.0 if i == 0 else 0.6)
        for color, thick in (((0, 0, 0), 4), ((255, 255, 255) if i else (0, 255, 0), 1 if i else 2)):
            cv2.putText(frame, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, size, color, thick, cv2.LINE_AA)
        y += int(32 * size) + 6
    return frame


class VideoSaver:
    """--save out.mp4: written under a temp name beside the target (same suffix, so OpenCV picks
    the container), renamed over the target when the run ends."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in self.FOURCC:
            raise OutputError(f"{self.path}: --save needs one of {', '.join(self.FOURCC)}")
        check_writable_dir(self.path.parent if str(self.path.parent) else Path("."))
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps if fps and 1 <= fps <= 240 else 25.0
        self.writer: Any = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*self.FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
            if not self.writer.isOpened():
                self.writer = None
                self.tmp.unlink(missing_ok=True)
                if _disk_full(self.path.parent):
                    raise OutputError(f"cannot write {self.path}: no space left on the device; free some disk space")
                raise OutputError(f"{self.path}: OpenCV cannot write this video format here; try --save out.avi")
        self.writer.write(frame)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if not (keep and self.frames and self.tmp.exists()):
            self.tmp.unlink(missing_ok=True)
            return
        # OpenCV's writer ignores write errors (a full disk gives a 0-byte or cut file): check the
        # file holds every frame before it may replace a previous video under the final name.
        problem = self._check_written()
        if problem:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {problem}; nothing was replaced; "
                              "free some disk space or choose another folder")
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {e.strerror}; check the path and permissions") from None

    def _check_written(self) -> str | None:
        import cv2

        try:
            with open(self.tmp, "rb") as f:
                os.fsync(f.fileno())
        except OSError as e:
            return e.strerror
        cap = cv2.VideoCapture(str(self.tmp))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else -1
        cap.release()
        if count != self.frames:
            full = " (no space left on the device)" if _disk_full(self.tmp.parent) else ""
            return f"the video came out incomplete{full}: {max(count, 0)} of {self.frames} frames readable"
        return None


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False
