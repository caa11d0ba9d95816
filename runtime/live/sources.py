"""What SOURCE means: an image file, a folder, a glob, a video file, a camera index, a /dev/video
device, an RTSP/HTTP URL or a GStreamer pipeline (only with the explicit `gst:` prefix: a file name
may contain "!"). "files" are images (run batched); the rest are frame sources (read by capture.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.folders import list_images
from catdog.runtime.spine.images import IMAGE_SUFFIXES
from catdog.runtime.spine.redact import redact_url

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mjpeg")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
GST_PREFIX = "gst:"
# What a live pipeline's appsink needs so that GStreamer never queues frames for us: keep one
# buffer, drop older ones, and hand each over when it arrives rather than when the clock says.
APPSINK_LATENCY = "drop=true max-buffers=1 sync=false"


@dataclass(frozen=True)
class Source:
    kind: str  # "files" | "video" | "camera" | "stream" | "pipeline"
    spec: str  # what the user typed, credentials redacted (__post_init__): every output names the source so
    files: tuple[Path, ...] = field(default=())  # kind == "files"
    target: str | int = ""  # what cv2.VideoCapture opens
    backend: str = "any"  # "any" | "v4l2" | "gstreamer"

    def __post_init__(self) -> None:
        # A camera URL's user:pass@ and secret parameters stay in `target` (what cv2.VideoCapture opens)
        # and nowhere else: `spec` is redacted once, here, so no line, result or page can show them.
        object.__setattr__(self, "spec", redact_url(self.spec))

    @property
    def shown(self) -> str:
        """The source as every output names it (results, lines, summary, page, /healthz)."""
        return self.spec

    @property
    def is_live(self) -> bool:
        """Cameras and streams: frames arrive in real time, keep only the newest."""
        return self.kind in ("camera", "stream", "pipeline")


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0) -> str:
    """The Jetson CSI camera pipeline (nvarguscamerasrc, NVMM -> BGR for OpenCV). `drop=true
    max-buffers=1` keeps GStreamer itself from queueing old frames."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, format=BGRx ! videoconvert ! "
        "video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def gst_pipeline(pipe: str) -> str:
    """The pipeline OpenCV opens for `gst:PIPE`. Without an appsink, a BGR appsink is appended with
    APPSINK_LATENCY. A user's own appsink gets `drop=true max-buffers=1` where it does not say
    otherwise (a live source keeps only the newest frame, and GStreamer must not queue in front of
    it); its `sync` is left as written (sync=true plays a file at its own rate). Latency belongs in
    the pipeline: OpenCV's GStreamer backend does not handle CAP_PROP_BUFFERSIZE, and setting it
    stops the playing pipeline."""
    pipe = pipe.strip()
    sinks = list(re.finditer(r"(?:^|!)\s*appsink\b([^!]*)", pipe))
    if not sinks:
        return f"{pipe} ! videoconvert ! video/x-raw, format=BGR ! appsink {APPSINK_LATENCY}"
    m = sinks[-1]
    props = m.group(1)
    extra = [f"{k}={v}" for k, v in (("drop", "true"), ("max-buffers", "1")) if not re.search(rf"\b{k}\s*=", props)]
    if not extra:
        return pipe
    return pipe[: m.end(1)].rstrip() + " " + " ".join(extra) + (" " if m.end(1) < len(pipe) else "") + pipe[m.end(1):]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _glob(pattern: str) -> Source:
    import glob

    matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
    images = [p for p in matches if is_image(p) and not p.is_dir()]
    if not images:
        raise InputError(f"{pattern}: no image files match this pattern (suffixes {', '.join(IMAGE_SUFFIXES)})")
    return Source("files", pattern, tuple(images))


def _openable(path: Path) -> str:
    """The path OpenCV opens for a video. OpenCV takes a path as UTF-8 text and crashes (SIGSEGV) on a
    name that is not (a file name's bytes need not be UTF-8 on Linux): such a file is opened through a
    link with a plain name in a private temporary folder, removed when the process exits."""
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="catdog-video-")
    atexit.register(shutil.rmtree, folder, True)
    link = os.path.join(folder, "video" + path.suffix.lower())  # the suffix is one of VIDEO_SUFFIXES: ASCII
    os.symlink(os.path.abspath(path), link)
    return link


def open_source(spec: str, recursive: bool = False) -> Source:
    """Classify SOURCE. Raises InputError for something that is none of the known kinds."""
    spec = str(spec)
    if spec.startswith(GST_PREFIX):
        return Source("pipeline", spec, target=gst_pipeline(spec[len(GST_PREFIX):]), backend="gstreamer")
    if spec.lower().startswith(URL_SCHEMES):
        return Source("stream", spec, target=spec)
    if re.fullmatch(r"\d{1,3}", spec):
        return Source("camera", spec, target=int(spec))
    if re.fullmatch(r"/dev/video\d+", spec):
        return Source("camera", spec, target=spec, backend="v4l2")
    path = Path(spec).expanduser()
    if path.is_dir():
        files = list_images(path, recursive)
        if not files:
            hint = "" if recursive else " (use --recursive for subfolders)"
            raise InputError(f"{spec}: no image files in this folder{hint}")
        return Source("files", spec, tuple(files))
    if path.exists() or path.is_symlink():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return Source("video", spec, target=_openable(path))
        return Source("files", spec, (path,))  # anything else is tried as an image; errors name it
    if any(c in spec for c in "*?["):
        return _glob(spec)
    hint = f"; a GStreamer pipeline needs the prefix: '{GST_PREFIX}{spec}'" if " ! " in spec else ""
    raise InputError(f"{spec}: no such file or folder (nor a camera index or URL){hint}")
