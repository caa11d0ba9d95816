"""A real RTSP camera on loopback, for the tests and `catdog-bench live`: GStreamer's own RTSP server
(gst-rtsp-server through PyGObject) serving H.264 made from photos, each shown for a number of
frames, at a steady frame rate, looping. Run it with Debian's python3 (it needs python3-gi,
gir1.2-gst-rtsp-server-1.0, python3-opencv and GStreamer's good/ugly plugins), never import it:

    /usr/bin/python3 benchmarks/live/rtsp_camera.py --images a.jpg,b.jpg --fps 15 --frames-per-image 30

It prints `READY rtsp://127.0.0.1:PORT/cam` once it listens, and on SIGTERM/SIGINT `SENT N` (frames
pushed into the encoder over all clients) before it exits. Each client gets its own pipeline that
starts at the first photo (a non-shared factory), so a test knows which photo a frame shows from
its position in the stream; with --shared every client sees one pipeline, like a real camera.
Loopback only: it binds 127.0.0.1 and nothing else."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import cv2
import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def load_frames(paths: list[str], width: int, height: int) -> list[bytes]:
    frames = []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"rtsp_camera: cannot read image {p}")
        frames.append(np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)).tobytes())
    return frames


class Camera(GstRtspServer.RTSPMediaFactory):
    def __init__(self, frames: list[bytes], width: int, height: int, fps: int, per_image: int, encoder: str):
        super().__init__()
        self.frames, self.fps, self.per_image = frames, fps, max(1, per_image)
        self.sent = 0
        self.lock = threading.Lock()
        self.duration = Gst.SECOND // fps
        enc = {"x264": f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=2000",
               "openh264": f"openh264enc gop-size={fps} complexity=low"}[encoder]
        self.launch = (f"( appsrc name=src is-live=false format=time do-timestamp=false block=true "
                       f"caps=video/x-raw,format=BGR,width={width},height={height},framerate={fps}/1 "
                       f"! videoconvert ! video/x-raw,format=I420 ! {enc} ! video/x-h264,profile=baseline "
                       f"! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")

    def do_create_element(self, url):  # noqa: N802 - GStreamer's virtual method
        return Gst.parse_launch(self.launch)

    def do_configure(self, media):  # noqa: N802
        src = media.get_element().get_child_by_name("src")
        state = {"i": 0}

        def need_data(appsrc, _length):
            i = state["i"]
            data = self.frames[(i // self.per_image) % len(self.frames)]
            buf = Gst.Buffer.new_wrapped(data)
            buf.pts = i * self.duration
            buf.duration = self.duration
            state["i"] = i + 1
            with self.lock:
                self.sent += 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="comma-separated photo paths, shown in this order, looping")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the stream")
    ap.add_argument("--frames-per-image", type=int, default=30)
    ap.add_argument("--encoder", choices=("x264", "openh264"), default="x264")
    ap.add_argument("--shared", action="store_true", help="one pipeline for every client, like a real camera")
    a = ap.parse_args(argv)
    width, height = (int(v) for v in a.size.lower().split("x"))
    Gst.init(None)
    frames = load_frames([p for p in a.images.split(",") if p], width, height)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = Camera(frames, width, height, a.fps, a.frames_per_image, a.encoder)
    factory.set_shared(a.shared)
    server.get_mount_points().add_factory(a.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_camera: cannot listen on 127.0.0.1:{a.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()

    def stop(*_):
        loop.quit()
        return GLib.SOURCE_REMOVE

    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, stop)
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{a.path}", flush=True)
    loop.run()
    print(f"SENT {factory.sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
