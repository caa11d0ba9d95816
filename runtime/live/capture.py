"""Frames from videos, cameras and streams. Video files are read frame by frame (every frame, in
order). Live sources go through LatestFrameReader (a thread that hands over the newest frame, keeps
bursts, counts drops, times itself and reconnects; see its docstring). Capture properties are set
only where the backend honours them: CAP_PROP_BUFFERSIZE on V4L2 cameras, open/read timeouts on
FFmpeg streams; `gst:` pipelines open through gst.py."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from catdog.runtime.live.gst import log_level
from catdog.runtime.live.sources import Source
from catdog.runtime.spine.errors import InputError

# FFmpeg's own log lines (e.g. "moov atom not found") would bury our one-line message; our errors
# say what failed. Set before OpenCV opens its first video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

STREAM_TIMEOUT_S = 10.0  # FFmpeg: a stream that does not answer (open) or goes silent (read) this long fails
MAX_KEPT = 3  # frames a burst may hold for the classifier; older ones are dropped for newer ones


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    index: int  # frame number since the source opened
    t_capture: float  # perf_counter when the frame was read (its arrival, for its age)
    decode_s: float  # files: wall time of cap.read(); live: CPU time of the capture thread on this frame
    wait_s: float = 0.0  # time the classifier waited for it
    read_s: float = 0.0  # live: wall time the capture thread spent in grab() + retrieve() (waiting included)


def _quiet_cv2() -> Any:
    import cv2

    log_level(cv2, "ERROR")  # OpenCV's backend probing prints WARN lines for every failed open; ours says it once
    return cv2


def describe(source: Source) -> str:
    return {"camera": f"camera {source.spec}", "video": f"{source.spec}", "stream": f"stream {source.spec}",
            "pipeline": "GStreamer pipeline"}.get(source.kind, source.spec)


def _open_stream(cv2: Any, target: str) -> Any:
    """A URL through FFmpeg, with timeouts instead of FFmpeg's 30 s; another backend where this
    OpenCV has no FFmpeg (CAP_ANY: e.g. GStreamer's)."""
    ms = int(STREAM_TIMEOUT_S * 1000)
    if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) and hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    return cv2.VideoCapture(target, cv2.CAP_ANY)


def open_capture(source: Source) -> Any:
    """An opened cv2.VideoCapture, or InputError saying why not and what to check."""
    cv2 = _quiet_cv2()
    if source.backend == "gstreamer":
        from catdog.runtime.live.gst import open_gstreamer

        return open_gstreamer(cv2, source, describe(source))
    if source.kind == "stream":
        cap = _open_stream(cv2, str(source.target))
    else:
        cap = cv2.VideoCapture(source.target, cv2.CAP_V4L2 if source.backend == "v4l2" else cv2.CAP_ANY)
    if cap.isOpened():
        if source.kind == "camera" and cap.getBackendName() == "V4L2":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # V4L2 honours it: one driver buffer, not four old frames
        return cap
    cap.release()
    what = describe(source)
    if source.kind == "camera":
        raise InputError(f"{what}: cannot open it (no such camera, or it is busy); check the index or device "
                         "(ls /dev/video*) and that no other program uses it")
    if source.kind == "video":
        raise InputError(f"{what}: cannot open the video (corrupt, truncated or an unsupported codec)")
    raise InputError(f"{what}: cannot connect within {STREAM_TIMEOUT_S:.0f} s (refused, or no video came; check "
                     "the URL, the network and credentials)")


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
            self.error = (f"{self.source.shown}: video ended after {self.read} of {self.frame_count} frames "
                          "(truncated or corrupt)")
        elif self.bad_frames:
            self.error = (f"{self.source.shown}: {self.bad_frames} corrupt frame(s) could not be decoded and "
                          "were skipped")

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
    """Hand the classifier the newest frame of a live source. `open_fn` opens (and reopens) the capture.

    A frame waiting for the classifier is dropped (and counted) when a newer one exists and it is
    older than one camera frame interval (measured from the arrival times, or the --realtime pace);
    younger ones are kept, at most MAX_KEPT, and handed over oldest first. So two frames that arrive
    together (RTP and FFmpeg deliver in bursts) are both classified when inference keeps up with
    the camera, and a model slower than the camera still gets the newest frame, never a queue:
    frame age stays within about one frame interval plus MAX_KEPT inferences.

    Per frame it records the capture thread's CPU time in grab() + retrieve() (`decode_s`: FFmpeg
    reads and decodes there; GStreamer decodes in its own threads, so there it is the copy out of
    the appsink) apart from the wall time of those calls (`read_s`, waiting for the camera included)."""

    def __init__(self, open_fn: Callable[[], Any], name: str, reconnect: bool = True, max_reconnects: int = 10,
                 backoff: tuple[float, float] = (0.5, 8.0), pace_fps: float | None = None,
                 log: Callable[[str], None] | None = None, max_kept: int = MAX_KEPT):
        self.open_fn, self.name = open_fn, name
        self.reconnect, self.max_reconnects, self.backoff = reconnect, max_reconnects, backoff
        self.pace = 1.0 / pace_fps if pace_fps and pace_fps > 0 else None  # --realtime on a file
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.max_kept = max(1, max_kept)
        self.cond = threading.Condition()
        self.stop_event = threading.Event()
        self.pending: deque[Frame] = deque()  # frames not yet taken, oldest first
        self.arrivals: deque[float] = deque(maxlen=31)  # recent arrival times: the camera's frame interval
        self.captured = 0  # frames read from the source
        self.dropped = 0  # frames replaced before anyone took them
        self.reconnects = 0  # reopens after which a frame arrived
        self._fails = 0  # reopen attempts since the last frame
        self._reopened = False  # a reopen whose first frame has not come yet
        self._last_problem: str | None = None  # why the last reopen failed
        self.ended = False
        self.error: str | None = None
        self.cap: Any = None
        self.thread: threading.Thread | None = None

    @property
    def latest(self) -> Frame | None:
        return self.pending[-1] if self.pending else None

    def interval(self) -> float:
        """The camera's frame interval in seconds: the --realtime pace, or the mean gap between the
        last arrivals (0 until two frames came)."""
        if self.pace:
            return self.pace
        a = self.arrivals
        return (a[-1] - a[0]) / (len(a) - 1) if len(a) > 1 else 0.0

    def start(self) -> "LatestFrameReader":
        self.cap = self.open_fn()  # a source that never opens fails here, in the caller's thread
        self.thread = threading.Thread(target=self._loop, name=f"capture:{self.name}", daemon=True)
        self.thread.start()
        return self

    def _read(self) -> tuple[bool, Any, float, float, float]:
        """(ok, image, arrival time, capture-thread CPU s, wall s) of one grab() + retrieve()."""
        t0, c0 = time.perf_counter(), time.thread_time()
        ok = self.cap.grab() if self.cap is not None else False
        img = None
        if ok:
            ok, img = self.cap.retrieve()
        t1, c1 = time.perf_counter(), time.thread_time()
        return bool(ok) and img is not None, img, t1, c1 - c0, t1 - t0

    def _loop(self) -> None:
        next_t = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                ok, img, t1, cpu, wall = self._read()
                if not ok:
                    if not self._reopen():
                        break
                    next_t = time.perf_counter()
                    continue
                if self.pace:  # play a file at its own frame rate, like a camera would deliver it
                    next_t += self.pace
                    self.stop_event.wait(max(0.0, next_t - time.perf_counter()))
                    t1 = time.perf_counter()
                self._fails, self._last_problem = 0, None
                if self._reopened:
                    self._reopened = False
                    self.reconnects += 1
                    self.log(f"{self.name}: reconnected")  # said once a frame came, not when the capture opened
                with self.cond:
                    self.arrivals.append(t1)
                    self._trim(t1, keep_newest=0)
                    self.pending.append(Frame(img, self.captured, t1, cpu, read_s=wall))
                    self.captured += 1
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _trim(self, now: float, keep_newest: int) -> None:
        """Drop waiting frames a newer one replaces: those older than one frame interval, and the
        oldest beyond MAX_KEPT. `keep_newest`: how many at the end are never dropped (1 when taking
        a frame; 0 on an arrival, the arriving frame being the newer one). Holds self.cond."""
        keep_s = self.interval()
        while len(self.pending) > keep_newest and (now - self.pending[0].t_capture > keep_s
                                                    or len(self.pending) + 1 - keep_newest > self.max_kept):
            self.pending.popleft()
            self.dropped += 1

    def _reopen(self) -> bool:
        """The source stopped delivering: reopen with exponential backoff, or give up after
        max_reconnects attempts in a row without a frame in between. "reconnected" is said when a
        frame arrives after a reopen (a capture can open and still deliver nothing)."""
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        if not self.reconnect:
            return False
        while self._fails < self.max_reconnects and not self.stop_event.is_set():
            delay = min(self.backoff[0] * 2 ** self._fails, self.backoff[1])
            self._fails += 1
            self.log(f"{self.name}: stream dropped; reconnecting in {delay:.1f} s "
                     f"(attempt {self._fails}/{self.max_reconnects})")
            if self.stop_event.wait(delay):
                return False
            try:
                self.cap = self.open_fn()
            except InputError as e:
                self._last_problem = str(e)
                continue
            self._reopened = True
            return True
        if not self.stop_event.is_set():
            last = f" (last attempt: {self._last_problem})" if self._last_problem else ""
            self.error = (f"{self.name}: stream dropped and did not come back after {self._fails} reconnect "
                          f"attempts{last}; check the camera, cable or network")
        return False

    def get(self, timeout: float | None = None) -> Frame | None:
        """The frame to classify next (waits for one); None when the source has ended."""
        t0 = time.perf_counter()
        with self.cond:
            while not self.pending and not self.ended:
                if not self.cond.wait(timeout):
                    return None
            if not self.pending:
                return None
            self._trim(time.perf_counter(), keep_newest=1)
            frame = self.pending.popleft()
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
