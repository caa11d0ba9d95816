"""Helpers `catdog-bench live` runs as scripts under other Pythons (never imported, no catdog imports):
the backend it measures lives in another interpreter (the pip OpenCV of the dev venv for FFmpeg,
Debian's python3-opencv for GStreamer), so what is timed must run there.

    PY live_tools.py probe                  what this Python has: OpenCV (path, GStreamer, FFmpeg),
                                            onnxruntime, catdog.runtime, PyGObject's RTSP server
    PY live_tools.py encode OUT.mkv ...     H.264 from photos with GStreamer's x264enc, the settings
                                            of rtsp_camera.py (needs python3-gi)
    PY live_tools.py decode FILE --backend ffmpeg|gstreamer
                                            decode every frame to BGR as fast as it goes, N times

Each prints one JSON object on stdout."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import sys
import time


def probe() -> dict:
    out: dict = {"python": sys.executable, "version": sys.version.split()[0]}
    try:
        import cv2

        build = cv2.getBuildInformation()

        def flag(name: str) -> bool:
            m = re.search(rf"^\s*{name}:\s*(\S+)", build, re.M)
            return bool(m) and m.group(1).upper() not in ("NO", "OFF")

        out["opencv"] = {"version": cv2.__version__, "path": cv2.__file__, "gstreamer": flag("GStreamer"),
                         "ffmpeg": flag("FFMPEG")}
    except ImportError:
        out["opencv"] = None
    out["onnxruntime"] = importlib.util.find_spec("onnxruntime") is not None
    out["runtime"] = importlib.util.find_spec("catdog") is not None and \
        importlib.util.find_spec("catdog.runtime") is not None
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import Gst, GstRtspServer  # noqa: F401

        Gst.init(None)
        out["rtsp_server"] = all(Gst.ElementFactory.find(e) for e in ("x264enc", "rtph264pay", "appsrc"))
        out["gstreamer_version"] = Gst.version_string()
    except (ImportError, ValueError):
        out["rtsp_server"] = False
    return out


def encode(out: str, images: list[str], size: tuple[int, int], fps: int, per_image: int, frames: int) -> dict:
    import cv2
    import gi
    import numpy as np

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    w, h = size
    imgs = []
    for p in images:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"live_tools: cannot read image {p}")
        imgs.append(np.ascontiguousarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)).tobytes())
    # rtsp_camera.py's x264 settings, so the file holds the stream the camera sends
    pipe = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=BGR,width={w},height={h},framerate={fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast "
        f"key-int-max={fps} bitrate=2000 ! video/x-h264,profile=baseline ! h264parse ! matroskamux "
        f"! filesink location={out}")
    src = pipe.get_by_name("src")
    pipe.set_state(Gst.State.PLAYING)
    dur = Gst.SECOND // fps
    for i in range(frames):
        buf = Gst.Buffer.new_wrapped(imgs[(i // max(1, per_image)) % len(imgs)])
        buf.pts, buf.duration = i * dur, dur
        src.emit("push-buffer", buf)
    src.emit("end-of-stream")
    msg = pipe.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        raise SystemExit(f"live_tools: encoding {out} failed: {msg.parse_error()[0].message if msg else 'timeout'}")
    return {"file": out, "frames": frames, "fps": fps, "size": f"{w}x{h}"}


def decode(path: str, backend: str, repeats: int) -> dict:
    import cv2

    runs, frames, shape = [], 0, None
    for _ in range(repeats):
        if backend == "gstreamer":
            cap = cv2.VideoCapture(f"filesrc location={path} ! matroskademux ! h264parse ! avdec_h264 ! videoconvert "
                                   "! video/x-raw,format=BGR ! appsink sync=false", cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise SystemExit(f"live_tools: OpenCV's {backend} backend cannot open {path}")
        n, t0 = 0, time.perf_counter()
        while True:
            ok, img = cap.read()
            if not ok:
                break
            n, shape = n + 1, img.shape
        wall = time.perf_counter() - t0
        cap.release()
        if not n:
            raise SystemExit(f"live_tools: OpenCV's {backend} backend decoded no frame of {path}")
        runs.append(1000.0 * wall / n)
        frames = n
    return {"backend": backend, "frames": frames, "shape": list(shape or ()), "repeats": repeats,
            "ms_per_frame": statistics.median(runs), "runs_ms_per_frame": runs,
            "opencv": cv2.__version__, "opencv_path": cv2.__file__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("probe")
    e = sub.add_parser("encode")
    e.add_argument("out")
    e.add_argument("--images", required=True)
    e.add_argument("--size", default="640x480")
    e.add_argument("--fps", type=int, default=30)
    e.add_argument("--frames-per-image", type=int, default=30)
    e.add_argument("--frames", type=int, default=300)
    d = sub.add_parser("decode")
    d.add_argument("file")
    d.add_argument("--backend", choices=("ffmpeg", "gstreamer"), required=True)
    d.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    if a.cmd == "probe":
        res = probe()
    elif a.cmd == "encode":
        w, h = (int(v) for v in a.size.lower().split("x"))
        res = encode(a.out, [p for p in a.images.split(",") if p], (w, h), a.fps, a.frames_per_image, a.frames)
    else:
        res = decode(a.file, a.backend, max(1, a.repeats))
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
