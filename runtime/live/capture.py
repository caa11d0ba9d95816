"""Frames from videos, cameras and streams. Video files are read frame by frame (every frame, in
order). Live sources go through LatestFrameReader: a thread reads as fast as frames arrive and hands
over the newest (a frame younger than one camera frame interval is kept for the classifier even
when a newer one arrives, so the bursts a network camera delivers are classified, not dropped); it
counts the frames it dropped, stamps each frame's arrival (for its age), times the capture thread's
own CPU per frame apart from its waiting, and reopens a dropped stream with backoff, saying
"reconnected" once a frame has come again.

Capture properties are set only where the backend honours them: CAP_PROP_BUFFERSIZE on V4L2
cameras; FFmpeg streams get open/read timeouts; a GStreamer pipeline carries its latency settings in
its appsink (sources.gst_pipeline), is checked by GStreamer itself before it is opened when PyGObject
(gi, optional, never a dependency) is there, and a pipeline that cannot play is reported with
GStreamer's own reason (read from OpenCV's log)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from catdog.runtime.live.sources import Source
from catdog.runtime.spine.errors import InputError

# FFmpeg's own log lines (e.g. "moov atom not found") would bury our one-line message; our errors
# say what failed. Set before OpenCV opens its first video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

STREAM_TIMEOUT_S = 10.0  # FFmpeg: a stream that does not answer (open) or goes silent (read) this long fails
GST_START_TIMEOUT_S = 30.0  # a GStreamer pipeline still not playing after this is reported (rtspsrc gives up at 20 s)
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

    try:  # OpenCV's backend probing prints WARN lines for every failed open; our message says it once
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    return cv2


def describe(source: Source) -> str:
    return {"camera": f"camera {source.spec}", "video": f"{source.spec}", "stream": f"stream {source.spec}",
            "pipeline": "GStreamer pipeline"}.get(source.kind, source.spec)


def has_gstreamer(cv2: Any) -> bool:
    return bool(re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()))


def gst_parse_problem(pipeline: str) -> str | None:
    """GStreamer's own complaint about a pipeline it cannot build (a missing element such as
    nvarguscamerasrc, a syntax error), from Gst.parse_launch without starting it; None when it
    builds, or when PyGObject (python3-gi) is not installed (it is optional). Needed because
    OpenCV's GStreamer backend waits for ever on a pipeline whose source element does not exist."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import GLib, Gst
    except (ImportError, ValueError):
        return None
    if not Gst.is_initialized():
        Gst.init(None)
    try:
        element = Gst.parse_launch_full(pipeline, None, Gst.ParseFlags.FATAL_ERRORS)
    except GLib.Error as e:
        return e.message
    element.set_state(Gst.State.NULL)
    return None


def gst_reason(log: str) -> str | None:
    """GStreamer's reason in OpenCV's log of a failed open: what the failing element reported
    ("module rtspsrc0 reported: Could not open resource for reading and writing."), else the
    backend's own last word ("cannot find appsink in manual pipeline")."""
    reported = re.findall(r"module (\S+) reported: (.+)", log)
    if reported:
        element, text = reported[-1]
        return f"{re.sub(r'[0-9]+$', '', element)}: {text.strip()}"
    warned = [w.strip() for w in re.findall(r"GStreamer warning: (.+)", log)
              if not re.search(r"pipeline have not been created|unable to start pipeline|query", w)]
    return warned[-1] if warned else None


def _with_opencv_log(cv2: Any, fn: Callable[[], Any], timeout: float) -> tuple[Any, str, bool]:
    """(fn(), what OpenCV logged meanwhile, finished). OpenCV's warnings are GStreamer's only way
    to say why a pipeline did not play; they go to file descriptor 2, so it is pointed at a
    temporary file for the call (lines other threads wrote to stderr meanwhile are passed on).
    fn runs in a thread and is abandoned after `timeout` s (OpenCV releases the GIL while it waits)."""
    result: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the caller below
            result["error"] = e
        done.set()

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
            threading.Thread(target=call, name="gst-open", daemon=True).start()
            finished = done.wait(timeout)
        finally:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        log = tmp.read().decode("utf-8", "replace")
    ours = [ln for ln in log.splitlines() if ln.strip() and not _library_line(ln)]
    if ours:
        print("\n".join(ours), file=sys.stderr, flush=True)
    if "error" in result:
        raise result["error"]
    return result.get("value"), log, finished


def _library_line(line: str) -> bool:
    """A line OpenCV or GLib/GStreamer wrote (kept from the user), not one of the program's own."""
    return bool(re.match(r"\[ ?(WARN|INFO|ERROR|DEBUG)|\(\S+:\d+\): |\s|Trying to dispose|You need to|This problem|"
                         r"dropping the final|to allow them|application or some", line))


def _open_gstreamer(cv2: Any, source: Source) -> Any:
    what = describe(source)
    if not has_gstreamer(cv2):
        raise InputError(f"{what}: this OpenCV build has no GStreamer support, so it cannot open a pipeline; on a "
                         "Jetson use the system OpenCV (apt install python3-opencv) instead of the pip wheel "
                         "(pip uninstall opencv-python opencv-python-headless)")
    problem = gst_parse_problem(str(source.target))
    if problem:
        raise InputError(f"{what}: GStreamer cannot build it: {problem} (check the element names with "
                         "gst-inspect-1.0 and install the plugin that provides a missing one)")
    cap, log, finished = _with_opencv_log(cv2, lambda: cv2.VideoCapture(source.target, cv2.CAP_GSTREAMER),
                                          GST_START_TIMEOUT_S)
    if not finished:
        raise InputError(f"{what}: GStreamer did not start it within {GST_START_TIMEOUT_S:.0f} s (a missing "
                         "element? install python3-gi for GStreamer's own reason, or run the pipeline with "
                         "gst-launch-1.0)")
    if cap.isOpened():
        return cap
    cap.release()
    reason = gst_reason(log) or "no reason given"
    raise InputError(f"{what}: GStreamer cannot play it: {reason} (check the camera, the URL or the pipeline; "
                     "gst-launch-1.0 runs it alone)")


def _open_stream(cv2: Any, target: str) -> Any:
    """A URL through FFmpeg, with timeouts instead of FFmpeg's 30 s; another backend where this
    OpenCV has no FFmpeg (CAP_ANY: e.g. GStreamer's)."""
    ms = int(STREAM_TIMEOUT_S * 1000)
    if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) and hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if cap.isOpened():
            return cap
        cap.release()
        return cap
    return cv2.VideoCapture(target, cv2.CAP_ANY)


def open_capture(source: Source) -> Any:
    """An opened cv2.VideoCapture, or InputError saying why not and what to check."""
    cv2 = _quiet_cv2()
    if source.backend == "gstreamer":
        return _open_gstreamer(cv2, source)
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
