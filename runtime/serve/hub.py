"""Where the run meets its viewers: the newest prediction and the newest annotated frame, each
with a version number, shared between the classifying thread and the server's. The run only swaps
references (never waits on a viewer); one encoder thread turns the newest frame into a JPEG, once
for every viewer, only while someone watches, and at most --stream-fps times a second. A slow
viewer skips versions: no lag, no queue."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

JPEG_QUALITY = 80


class Hub:
    def __init__(self, max_viewers: int = 8, stream_fps: float = 15.0):
        self.max_viewers = max_viewers
        self.min_gap = 1.0 / stream_fps if stream_fps > 0 else 0.0  # the stream's pace, not inference's
        self.cond = threading.Condition()
        self.latest: dict[str, Any] | None = None  # the newest prediction, as /api/latest serves it
        self.version = 0  # bumps with every prediction
        self._frame: np.ndarray | None = None
        self._frame_version = 0
        self.jpeg: bytes | None = None
        self.jpeg_version = 0
        self.viewers = 0
        self.frames = 0  # frames published by the run
        self.encoded = 0  # JPEGs made for viewers
        self.source_alive = False
        self.closed = False
        self._encoder = threading.Thread(target=self._encode_loop, name="mjpeg-encoder", daemon=True)
        self._encoder.start()

    # -- the run's side: never blocks on a viewer ---------------------------------------------------
    def publish(self, record: dict[str, Any], frame: np.ndarray | None = None) -> None:
        with self.cond:
            self.latest, self.version = record, self.version + 1
            if frame is not None:
                self._frame, self._frame_version = frame, self._frame_version + 1
                self.frames += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self._encoder.join(timeout=2.0)

    # -- the viewers' side --------------------------------------------------------------------------
    def join(self) -> bool:
        """A viewer arrives: False when the cap is reached (the server answers 503)."""
        with self.cond:
            if self.viewers >= self.max_viewers:
                return False
            self.viewers += 1
            self.cond.notify_all()  # wakes the encoder
            return True

    def leave(self) -> None:
        with self.cond:
            self.viewers = max(0, self.viewers - 1)

    def wait_jpeg(self, after: int, timeout: float) -> tuple[bytes | None, int]:
        """The newest JPEG newer than version `after`, waiting up to `timeout` s for it."""
        return self._wait(lambda: (self.jpeg, self.jpeg_version), after, timeout)

    def wait_prediction(self, after: int, timeout: float) -> tuple[dict[str, Any] | None, int]:
        return self._wait(lambda: (self.latest, self.version), after, timeout)

    def _wait(self, newest: Callable[[], tuple[Any, int]], after: int, timeout: float) -> tuple[Any, int]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while newest()[1] <= after and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0 or not self.cond.wait(left):
                    break
            value, version = newest()
            return (value, version) if version > after else (None, after)

    def _encode_loop(self) -> None:
        import cv2

        done, last = 0, 0.0
        while True:
            # A viewer sees at most stream_fps frames a second: each encode (and each send to every
            # viewer) takes CPU from inference, which runs at its own pace whatever the stream's.
            wait = last + self.min_gap - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self.cond:
                while not self.closed and (self.viewers == 0 or self._frame_version <= done):
                    self.cond.wait(0.5)
                if self.closed:
                    return
                frame, done = self._frame, self._frame_version
            if frame is None:  # a record without an image (a photo run): nothing to encode
                continue
            last = time.monotonic()
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                with self.cond:
                    self.jpeg, self.jpeg_version = buf.tobytes(), self.jpeg_version + 1
                    self.encoded += 1
                    self.cond.notify_all()
