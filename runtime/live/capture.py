"""Frames from videos, cameras and streams. Video files are read frame by frame (every frame, in
order). Live sources go through LatestFrameReader: a thread reads as fast as frames arrive and keeps
only the newest, so a slow model never builds up lag; it counts the frames it dropped, stamps each
frame's capture time (for its age), and reopens a dropped stream with backoff."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from catdog.runtime.live.sources import Source
from catdog.runtime.spine.errors import InputError

# FFmpeg's own log lines (e.g. "moov atom not found") would bury our one-line message; our errors
# say what failed. Set before OpenCV opens its first video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    index: int  # frame number since the source opened
    t_capture: float  # perf_counter when the frame was read
    decode_s: float  # time spent in cap.read()
    wait_s: float = 0.0  # time the consumer waited for it


def _quiet_cv2() -> Any:
    import cv2

    try:  # OpenCV's backend probing prints WARN lines for every failed open; our message says it once
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    return cv2


def describe(source: Source) -> str:
    return {"camera": f"camera {source.spec}", "video": f"{source.spec}", "stream": f"stream {source.spec}",
            "pipeline": "GStreamer pipeline"}.get(source.kind, source.spec)


def open_capture(source: Source) -> Any:
    """An opened cv2.VideoCapture, or InputError saying why not and what to check."""
    cv2 = _quiet_cv2()
    if source.backend == "gstreamer" and not re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()):
        raise InputError("this OpenCV build has no GStreamer support, so it cannot open a pipeline; on a Jetson "
                         "use the system OpenCV (apt install python3-opencv) instead of the pip wheel")
    api = {"gstreamer": cv2.CAP_GSTREAMER, "v4l2": cv2.CAP_V4L2}.get(source.backend, cv2.CAP_ANY)
    cap = cv2.VideoCapture(source.target, api)
    if cap.isOpened():
        if source.is_live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the backend honours it: less queued latency
        return cap
    cap.release()
    what = describe(source)
    if source.kind == "camera":
        raise InputError(f"{what}: cannot open it (no such camera, or it is busy); check the index or device "
                         "(ls /dev/video*) and that no other program uses it")
    if source.kind == "video":
        raise InputError(f"{what}: cannot open the video (corrupt, truncated or an unsupported codec)")
    raise InputError(f"{what}: cannot connect (check the URL or pipeline, the network and credentials)")


class FileReader:
    """Every frame of a video file, in order. `error` is set if the file ends before the frame
    count in its header (truncated) or has unreadable frames in the middle."""

    def __init__(self, source: Source, max_skip: int = 5):
        cv2 = _quiet_cv2()
        self.source = source
        self.cap = open_capture(source)
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.max_skip = max_skip
        self.read = 0
        self.bad_frames = 0
        self.error: str | None = None
        self.dropped = 0

    def __iter__(self) -> Iterator[Frame]:
        while True:
            t0 = time.perf_counter()
            ok, img = self.cap.read()
            if not ok or img is None:
                img = self._recover() if self.read + self.bad_frames < self.frame_count else None
                if img is None:
                    break
            t1 = time.perf_counter()
            yield Frame(img, self.read + self.bad_frames, t1, t1 - t0)
            self.read += 1
        if self.read + self.bad_frames < self.frame_count:
            self.error = (f"{self.source.spec}: video ended after {self.read} of {self.frame_count} frames "
                          "(truncated or corrupt)")
        elif self.bad_frames:
            self.error = f"{self.source.spec}: {self.bad_frames} corrupt frame(s) could not be decoded and were skipped"

    def _recover(self) -> np.ndarray | None:
        """A frame that fails to decode before the end the header promises: try the next few."""
        for k in range(1, self.max_skip + 1):
            if self.read + self.bad_frames + k >= self.frame_count:
                return None
            if self.cap.grab():
                ok, img = self.cap.retrieve()
                if ok and img is not None:
                    self.bad_frames += k
                    return img
        return None

    def close(self) -> None:
        self.cap.release()


class LatestFrameReader:
    """Keep only the newest frame of a live source. `open_fn` opens (and reopens) the capture."""

    def __init__(self, open_fn: Callable[[], Any], name: str, reconnect: bool = True, max_reconnects: int = 10,
                 backoff: tuple[float, float] = (0.5, 8.0), pace_fps: float | None = None,
                 log: Callable[[str], None] | None = None):
        self.open_fn, self.name = open_fn, name
        self.reconnect, self.max_reconnects, self.backoff = reconnect, max_reconnects, backoff
        self.pace = 1.0 / pace_fps if pace_fps and pace_fps > 0 else None  # --realtime on a file
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.cond = threading.Condition()
        self.stop_event = threading.Event()
        self.latest: Frame | None = None
        self.captured = 0  # frames read from the source
        self.dropped = 0  # frames replaced before anyone took them
        self.reconnects = 0  # successful reopens
        self._fails = 0  # reopen attempts since the last frame
        self.ended = False
        self.error: str | None = None
        self.cap: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> "LatestFrameReader":
        self.cap = self.open_fn()  # a source that never opens fails here, in the caller's thread
        self.thread = threading.Thread(target=self._loop, name=f"capture:{self.name}", daemon=True)
        self.thread.start()
        return self

    def _loop(self) -> None:
        next_t = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                ok, img = self.cap.read() if self.cap is not None else (False, None)
                t1 = time.perf_counter()
                if not ok or img is None:
                    if not self._reopen():
                        break
                    next_t = time.perf_counter()
                    continue
                if self.pace:  # play a file at its own frame rate, like a camera would deliver it
                    next_t += self.pace
                    self.stop_event.wait(max(0.0, next_t - time.perf_counter()))
                self._fails = 0
                with self.cond:
                    if self.latest is not None:
                        self.dropped += 1
                    self.latest = Frame(img, self.captured, time.perf_counter() if self.pace else t1, t1 - t0)
                    self.captured += 1
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _reopen(self) -> bool:
        """The source stopped delivering: reopen with exponential backoff, or give up after
        max_reconnects attempts in a row without a frame in between."""
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        if not self.reconnect:
            return False
        delay = self.backoff[0]
        while self._fails < self.max_reconnects and not self.stop_event.is_set():
            self._fails += 1
            self.log(f"{self.name}: stream dropped; reconnecting in {delay:.1f} s "
                     f"(attempt {self._fails}/{self.max_reconnects})")
            if self.stop_event.wait(delay):
                return False
            delay = min(delay * 2, self.backoff[1])
            try:
                self.cap = self.open_fn()
            except InputError:
                continue
            self.reconnects += 1
            self.log(f"{self.name}: reconnected")
            return True
        if not self.stop_event.is_set():
            self.error = (f"{self.name}: stream dropped and did not come back after {self._fails} reconnect "
                          "attempts; check the camera, cable or network")
        return False

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken (waits for one); None when the source has ended."""
        t0 = time.perf_counter()
        with self.cond:
            while self.latest is None and not self.ended:
                if not self.cond.wait(timeout):
                    return None
            frame, self.latest = self.latest, None
        if frame is not None:
            frame.wait_s = time.perf_counter() - t0
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    def stop(self) -> None:
        self.stop_event.set()
        with self.cond:
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
        if self.cap is not None and (self.thread is None or not self.thread.is_alive()):
            self.cap.release()
            self.cap = None
