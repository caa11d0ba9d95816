"""Opening a `gst:` pipeline through OpenCV's GStreamer backend, so that one that cannot play says
why in one line and in bounded time: GStreamer itself checks the pipeline first when PyGObject (gi,
python3-gi) is there (optional, imported lazily, never a dependency: OpenCV's backend waits for ever
on a pipeline whose source element does not exist); OpenCV's open runs with a time limit; and
GStreamer's own reason (a refused connection, a missing resource) is read from OpenCV's log, which
is the only place the backend reports it. Latency settings live in the pipeline's appsink
(sources.gst_pipeline): OpenCV's GStreamer backend does not handle CAP_PROP_BUFFERSIZE."""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable

from catdog.runtime.live.sources import Source
from catdog.runtime.spine import stderr
from catdog.runtime.spine.errors import InputError

SLOW_S = 3.0  # an open still waiting after this is checked by GStreamer itself (with python3-gi)
GST_START_TIMEOUT_S = 30.0  # a GStreamer pipeline still not playing after this is reported (rtspsrc gives up at 20 s)
# Sources a second client may open while OpenCV's open waits (a camera sensor may not be opened twice)
NETWORK = re.compile(r"\b(rtspsrc|souphttpsrc|udpsrc|tcpclientsrc|rtmpsrc|srt(client)?src"
                     r"|uri(decodebin3?|sourcebin))\b")


def log_level(cv2: Any, level: str) -> None:
    """Set OpenCV's log level where this build lets Python do it (Debian's 4.6 has no
    cv2.utils.logging: there its WARN lines stay on, except while _with_opencv_log reads them)."""
    try:
        cv2.utils.logging.setLogLevel(getattr(cv2.utils.logging, f"LOG_LEVEL_{level}"))
    except AttributeError:
        pass


def has_gstreamer(cv2: Any) -> bool:
    return bool(re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()))


def _gst() -> tuple[Any, Any] | None:
    """(GLib, Gst) from PyGObject, initialised; None where python3-gi is not installed (optional)."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import GLib, Gst
    except (ImportError, ValueError):
        return None
    if not Gst.is_initialized():
        Gst.init(None)
    return GLib, Gst


def gst_parse_problem(pipeline: str) -> str | None:
    """GStreamer's own complaint about a pipeline it cannot build (a missing element such as
    nvarguscamerasrc, a syntax error), from Gst.parse_launch without starting it; None when it
    builds, or without python3-gi. Needed because OpenCV's GStreamer backend waits for ever on a
    pipeline whose source element does not exist."""
    if (gst := _gst()) is None:
        return None
    GLib, Gst = gst  # noqa: N806 - the libraries' own names
    try:
        element = Gst.parse_launch_full(pipeline, None, Gst.ParseFlags.FATAL_ERRORS)
    except GLib.Error as e:
        return e.message
    element.set_state(Gst.State.NULL)
    return None


def gst_play_problem(pipeline: str, timeout: float) -> str | None:
    """GStreamer's error when it plays the pipeline itself for up to `timeout` s ("rtspsrc: Could
    not open resource for reading and writing."); None if none came, or without python3-gi. Asked
    only after OpenCV's open failed without a reason or is slow (OpenCV 4.6 sometimes misses the
    error and waits), never before a good open: a camera is not opened twice."""
    if (gst := _gst()) is None:
        return None
    GLib, Gst = gst  # noqa: N806
    try:
        element = Gst.parse_launch_full(pipeline, None, Gst.ParseFlags.FATAL_ERRORS)
    except GLib.Error as e:
        return e.message
    try:
        element.set_state(Gst.State.PLAYING)
        msg = element.get_bus().timed_pop_filtered(int(timeout * Gst.SECOND), Gst.MessageType.ERROR)
        if msg is None:
            return None
        err = msg.parse_error()[0]
        return f"{re.sub(r'[0-9]+$', '', msg.src.get_name())}: {err.message}"
    finally:
        element.set_state(Gst.State.NULL)


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


def _with_opencv_log(cv2: Any, fn: Callable[[], Any], timeout: float,
                     meanwhile: Callable[[], str | None] | None = None) -> tuple[Any, str, bool, str | None]:
    """(fn(), what OpenCV logged meanwhile, finished, problem). If fn is still running after
    SLOW_S, `meanwhile()` may find the problem (then fn is abandoned). OpenCV's warnings are GStreamer's only way
    to say why a pipeline did not play; they go to file descriptor 2, so it is pointed at a
    temporary file for the call (spine.stderr: lines other threads wrote meanwhile are passed on).
    fn runs in a thread and is abandoned after `timeout` s (OpenCV releases the GIL while it waits)."""
    result: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            result["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the caller below
            result["error"] = e
        done.set()

    with stderr.captured(lambda ln: _library_line(ln.decode("utf-8", "replace")) or not ln.strip()) as read:
        try:
            log_level(cv2, "WARNING")
            threading.Thread(target=call, name="gst-open", daemon=True).start()
            t0 = time.monotonic()
            finished, problem = done.wait(min(SLOW_S, timeout)), None
            if not finished and meanwhile is not None:
                problem = meanwhile()
                finished = done.is_set()
            if not finished and problem is None:
                finished = done.wait(max(0.0, timeout - (time.monotonic() - t0)))
        finally:
            log_level(cv2, "ERROR")
        log = read().decode("utf-8", "replace")
    if "error" in result:
        raise result["error"]
    return result.get("value"), log, finished, problem


def _library_line(line: str) -> bool:
    """A line OpenCV or GLib/GStreamer wrote (kept from the user), not one of the program's own."""
    return bool(re.match(r"\[ ?(WARN|INFO|ERROR|DEBUG)|\(\S+:\d+\): |\s|Trying to dispose|You need to|This problem|"
                         r"dropping the final|to allow them|application or some", line))


def open_gstreamer(cv2: Any, source: Source, what: str) -> Any:
    """An opened cv2.VideoCapture of a `gst:` pipeline, or InputError with GStreamer's reason."""
    if not has_gstreamer(cv2):
        raise InputError(f"{what}: this OpenCV build has no GStreamer support, so it cannot open a pipeline; on a "
                         "Jetson use the system OpenCV (apt install python3-opencv) instead of the pip wheel "
                         "(pip uninstall opencv-python opencv-python-headless)")
    problem = gst_parse_problem(str(source.target))
    if problem:
        raise InputError(f"{what}: GStreamer cannot build it: {problem} (check the element names with "
                         "gst-inspect-1.0 and install the plugin that provides a missing one)")
    pipeline = str(source.target)
    cap, log, finished, problem = _with_opencv_log(
        cv2, lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), GST_START_TIMEOUT_S,
        meanwhile=(lambda: gst_play_problem(pipeline, GST_START_TIMEOUT_S - SLOW_S)) if NETWORK.search(pipeline)
        else None)
    if finished and cap is not None and cap.isOpened():
        return cap
    if cap is not None:
        cap.release()
    reason = problem or gst_reason(log) or (gst_play_problem(pipeline, 5.0) if finished else None)
    if reason:
        raise InputError(f"{what}: GStreamer cannot play it: {reason} (check the camera, the URL or the pipeline; "
                         "gst-launch-1.0 runs it alone)")
    if not finished:
        raise InputError(f"{what}: GStreamer did not start it within {GST_START_TIMEOUT_S:.0f} s (a missing "
                         "element? install python3-gi for GStreamer's own reason, or run the pipeline with "
                         "gst-launch-1.0)")
    raise InputError(f"{what}: GStreamer cannot play it, and gave no reason (check the camera, the URL or the "
                     "pipeline; gst-launch-1.0 runs it alone)")
