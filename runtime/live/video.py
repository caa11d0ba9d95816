"""Video out: the overlay drawn on each frame (label, score, FPS, stage times), the probability
smoother for live labels, and the --save writer (a temp name beside the target, renamed when the
run ends and only once the file is proved to hold every frame)."""

from __future__ import annotations

import os
import shutil
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from catdog.runtime.engine.classifier import Prediction
from catdog.runtime.spine.errors import OutputError
from catdog.runtime.spine.fileio import check_writable_dir


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
        size, thick = scale * (1.0 if i == 0 else 0.6), 1 if i else 2
        # The dark halo is the same stroke drawn around the text: a thicker stroke would also widen
        # every letter's advance (Hershey fonts), and the halo would drift off the small lines.
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1), (0, 2), (2, 0), (-2, 0), (0, -2)):
            cv2.putText(frame, text, (10 + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, size, (0, 0, 0), thick, cv2.LINE_AA)
        cv2.putText(frame, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255) if i else (0, 255, 0),
                    thick, cv2.LINE_AA)
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
        check_writable_dir(self.path.parent, create=False)  # made with the first frame: none if none comes
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps if fps and 1 <= fps <= 240 else 25.0
        self.writer: Any = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            fourcc = cv2.VideoWriter.fourcc(*self.FOURCC[self.path.suffix.lower()])
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"cannot write to {self.path.parent}: {e.strerror}; choose a writable folder"
                                  ) from None
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
