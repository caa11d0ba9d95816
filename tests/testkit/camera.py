"""A real camera stack for the tests, from Debian packages: GStreamer's RTSP server serving H.264
made from labelled photos (benchmarks/live/rtsp_camera.py, run by Debian's /usr/bin/python3 with
python3-gi), a TCP server that accepts and never answers, a model slower than a camera, and the
"Jetson recipe" venv (Debian's python3 with --system-site-packages, Debian's python3-opencv, `pip
install .` with no runtime extra, plus onnxruntime standing in for NVIDIA's wheel).

Nothing here skips: a missing package fails the test with the apt-get command that installs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_CAMERA = REPO / "benchmarks" / "live" / "rtsp_camera.py"

# What the camera stack needs from Debian, each with the package that provides it.
APT = {
    "python3": "python3", "venv": "python3-venv", "gi": "python3-gi", "Gst": "gir1.2-gstreamer-1.0",
    "GstRtspServer": "gir1.2-gst-rtsp-server-1.0", "cv2": "python3-opencv",
    "videotestsrc": "gstreamer1.0-plugins-base", "videoconvert": "gstreamer1.0-plugins-base",
    "appsrc": "gstreamer1.0-plugins-base", "decodebin": "gstreamer1.0-plugins-base",
    "rtspsrc": "gstreamer1.0-plugins-good", "rtph264depay": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good", "avidemux": "gstreamer1.0-plugins-good",
    "jpegdec": "gstreamer1.0-plugins-good", "h264parse": "gstreamer1.0-plugins-bad",
    "x264enc": "gstreamer1.0-plugins-ugly", "avdec_h264": "gstreamer1.0-libav",
}

_PROBE = r"""
import importlib, sys
missing = []
try:
    import ensurepip  # noqa: F401 (python3-venv: `python3 -m venv` needs it for pip)
except ImportError:
    missing.append("venv")
try:
    import gi
except ImportError:
    print("gi"); sys.exit(0)
for ns in ("Gst", "GstRtspServer"):
    try:
        gi.require_version(ns, "1.0"); importlib.import_module("gi.repository." + ns)
    except (ImportError, ValueError):
        missing.append(ns)
try:
    import cv2  # noqa: F401
except ImportError:
    missing.append("cv2")
if "Gst" not in missing:
    from gi.repository import Gst
    Gst.init(None)
    missing += [e for e in sys.argv[1:] if Gst.ElementFactory.find(e) is None]
print(" ".join(missing))
"""

_checked: list[str] | None = None


def require_camera_stack() -> None:
    """Fails (never skips) with the apt-get command for whatever of the stack is missing."""
    global _checked
    if _checked is None:
        elements = [k for k, v in APT.items() if v.startswith("gstreamer1.0")]
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            _checked = ["python3"]
        else:
            r = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE, *elements], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, f"{SYSTEM_PYTHON} cannot run the camera-stack probe: {r.stderr}"
            _checked = r.stdout.split()
    if _checked:
        pkgs = sorted({APT[m] for m in _checked})
        raise AssertionError(f"the camera-stack tests need {', '.join(_checked)} from Debian: "
                             f"sudo apt-get install -y {' '.join(pkgs)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspCamera:
    """benchmarks/live/rtsp_camera.py in a child process: a real RTSP camera on 127.0.0.1. `photos` are
    shown in order, each for `per_image` frames, looping; each client starts at the first photo.
    stop() ends it (SIGTERM) and returns the frames it sent; start() again serves the same port."""

    def __init__(self, photos: list[Path], fps: int = 15, per_image: int = 15, size: str = "320x240",
                 port: int | None = None, shared: bool = False):
        require_camera_stack()
        self.args = ["--images", ",".join(map(str, photos)), "--fps", str(fps), "--frames-per-image", str(per_image),
                     "--size", size] + (["--shared"] if shared else [])
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.proc: subprocess.Popen | None = None
        self.sent: list[int] = []  # frames sent by each run of the server

    def start(self, timeout: float = 20.0) -> "RtspCamera":
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_CAMERA), *self.args, "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()
        lines: list[str] = []

        def read_first() -> None:
            line = self.proc.stdout.readline()
            lines.append(line)
            ready.set()

        threading.Thread(target=read_first, daemon=True).start()
        if not ready.wait(timeout) or not lines[0].startswith("READY "):
            self.proc.kill()
            err = self.proc.communicate(timeout=10)[1]
            raise AssertionError(f"the RTSP camera did not start on port {self.port}: {lines} {err}")
        assert lines[0].split()[1] == self.url, lines
        return self

    def stop(self) -> int:
        """SIGTERM; the frames this run of the server pushed into its encoder."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.proc = None
        sent = [int(x.split()[1]) for x in out.splitlines() if x.startswith("SENT ")]
        assert sent, f"the RTSP camera said nothing on SIGTERM: {out!r} {err!r}"
        self.sent.append(sent[-1])
        return sent[-1]

    def __enter__(self) -> "RtspCamera":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.stop()


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte (a camera whose
    software hung): a client must give up by itself."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()

    def __enter__(self) -> "SilentServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_slow_model(path: Path, repeats: int = 3, width: int = 1024) -> Path:
    """A real classifier (cat/dog, catdog metadata, 32x32 input) made slow by a heavy op: the
    pooled features' outer product (width x width) times a width x width matrix, `repeats` times
    (~2 GFLOP each): tens of ms per frame on one thread, slower than a 30 fps camera."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from synthetic import meta  # scripts/synthetic.py (tests/conftest.py puts scripts/ on sys.path)

    from catdog.runtime.spine.metadata import METADATA_KEY

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((3 * 32 * 32, width)) * 0.01).astype(np.float32), "w0"),
             numpy_helper.from_array((rng.standard_normal((width, 2)) * 0.1).astype(np.float32), "w_out"),
             numpy_helper.from_array(np.zeros(2, np.float32), "b_out"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0")]
    nodes = [helper.make_node("Flatten", ["input"], ["f"]),
             helper.make_node("MatMul", ["f", "w0"], ["h0"]),
             helper.make_node("Tanh", ["h0"], ["t0"]),
             helper.make_node("Transpose", ["t0"], ["col"], perm=[1, 0]),
             helper.make_node("MatMul", ["col", "t0"], ["sq0"])]  # (width, width)
    x = "sq0"
    for i in range(repeats):
        w = (rng.standard_normal((width, width)) / width).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i + 1}"))
        nodes += [helper.make_node("MatMul", [x, f"w{i + 1}"], [f"m{i}"]),
                  helper.make_node("Tanh", [f"m{i}"], [f"sq{i + 1}"])]
        x = f"sq{i + 1}"
    nodes += [helper.make_node("ReduceMean", [x, "axis0"], ["pooled"], keepdims=1),  # (1, width)
              helper.make_node("Add", ["pooled", "t0"], ["mix"]),
              helper.make_node("Gemm", ["mix", "w_out", "b_out"], ["logits"])]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])
    model = helper.make_model(helper.make_graph(nodes, "slow", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: meta().to_json()})
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def build_jetson_venv(root: Path) -> Path:
    """docs/jetson.md's Jetson recipe, rehearsed on Debian: `python3 -m venv --system-site-packages`,
    the system's python3-opencv (GStreamer inside), `pip install .` without a runtime extra, and
    onnxruntime (NVIDIA's wheel on a Jetson). Returns the venv's bin folder."""
    require_camera_stack()
    venv = root / "jetson"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   capture_output=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    r = subprocess.run([*pip, str(REPO), "onnxruntime"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PIP_NO_INPUT": "1"})
    assert r.returncode == 0, f"pip install . onnxruntime in the Jetson-recipe venv failed: {r.stderr[-2000:]}"
    return venv / "bin"


def read_lines_until(stream, stop: threading.Event, into: list[str]) -> threading.Thread:
    """Pump a child's text pipe into `into` in a thread (so a test can watch stdout as it grows)."""

    def pump() -> None:
        for line in iter(stream.readline, ""):
            into.append(line)
        stop.set()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def wait_for(cond, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(step)


def runtime_cmd(bin_dir: Path | None = None) -> list[str]:
    """The real `catdog-runtime` console script: the venv running the tests', or another venv's."""
    return [str((bin_dir or Path(sys.executable).parent) / "catdog-runtime")]


class BurstyMjpegCamera:
    """A real HTTP MJPEG camera on 127.0.0.1 that sends its frames in bursts: `burst` frames back to
    back, then a pause, `fps` frames a second on average (as RTP and FFmpeg hand frames over in
    bursts). Frame k shows photos[(k // per_image) % len(photos)]."""

    def __init__(self, photos: list[Path], fps: float = 15.0, burst: int = 3, per_image: int = 15,
                 size: tuple[int, int] = (160, 120)):
        import http.server
        import socketserver

        import cv2

        jpgs = [cv2.imencode(".jpg", cv2.resize(cv2.imread(str(p)), size))[1].tobytes() for p in photos]
        self.sent = 0
        self.stopped = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                k, t = 0, time.monotonic()
                try:
                    while not outer.stopped.is_set():
                        for _ in range(burst):
                            jpg = jpgs[(k // per_image) % len(jpgs)]
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                             % len(jpg) + jpg + b"\r\n")
                            self.wfile.flush()
                            k += 1
                            outer.sent = k
                        t += burst / fps
                        time.sleep(max(0.0, t - time.monotonic()))
                except OSError:
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> "BurstyMjpegCamera":
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
