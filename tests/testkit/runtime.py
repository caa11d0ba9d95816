"""Test helpers for the runtime (a uniquely named module, not conftest, so imports never pick up
another stage's conftest): real ONNX models built with onnx.helper (no torch: these tests also run
in the torch-free venv), a numpy reference of the same network, OpenCV-written videos, crafted
image bytes, the CLI, an HTTP MJPEG camera. The models, videos and image bytes are
scripts/synthetic.py's (scripts/bad_inputs.py builds its corpus with them, and scripts never import
the tests; tests/conftest.py puts scripts/ on sys.path); they are re-exported here so that the tests
have one place to import from."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from synthetic import (  # noqa: F401 - re-exported: the tests import them from here
    HIDDEN,
    SPEC,
    build_model,
    meta,
    png_header_bomb,
    weights,
    with_exif_orientation,
    write_video,
)

PHOTOS = ["cat.168.jpg", "cat.193.jpg", "cat.379.jpg", "dog.169.jpg", "dog.319.jpg", "dog.381.jpg"]


def reference_logits(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The same network in plain numpy: Conv3x3(pad 1) -> ReLU -> mean -> Gemm. x: (N,3,H,W) float."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # N,C,H,W,3,3
    conv = np.einsum("nchwij,kcij->nkhw", win, w["conv_w"]) + w["conv_b"][None, :, None, None]
    pooled = np.maximum(conv, 0).mean(axis=(2, 3))
    return pooled @ w["fc_w"].T + w["fc_b"]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (python -m catdog.runtime), as a user would run it. On the CPU
    provider unless the test names one: the numbers are checked against CPU/numpy references, and
    on a GPU box `auto` would pick CUDA/TensorRT (other rounding, engine builds in ~/.cache)."""
    argv = [*map(str, args)]
    if not any(a == "--provider" or a.startswith("--provider=") for a in argv):
        argv += ["--provider", "cpu"]
    return subprocess.run([sys.executable, "-m", "catdog.runtime", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


class MjpegServer:
    """A real HTTP MJPEG camera on 127.0.0.1 (multipart/x-mixed-replace of JPEG frames made from
    real photos), the format of most IP cameras' /stream.mjpg, opened by OpenCV's FFmpeg backend.
    Connection k serves `per_connection[k]` frames then hangs up (None: until stop()); stop() also
    closes the listening socket, so reconnects are refused, as when a camera loses power."""

    def __init__(self, photo_paths: list[Path], per_connection: list[int | None], fps: float = 50.0,
                 size: tuple[int, int] = (64, 48)):
        import http.server
        import socketserver
        import threading

        import cv2

        frames = [cv2.imencode(".jpg", cv2.resize(cv2.imread(str(p)), size))[1].tobytes() for p in photo_paths]
        self.served: list[int] = []  # frames sent on each connection
        self.stopped = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                conn = len(outer.served)
                outer.served.append(0)
                limit = per_connection[conn] if conn < len(per_connection) else None
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not outer.stopped.is_set() and (limit is None or outer.served[conn] < limit):
                        jpg = frames[outer.served[conn] % len(frames)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        outer.served[conn] += 1
                        time.sleep(1.0 / fps)
                except OSError:  # the client went away
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "MjpegServer":
        return self

    def __exit__(self, *exc) -> None:
        if not self.stopped.is_set():
            self.stop()


def copy_photos(folder: Path, photo_paths: list[Path], n: int) -> Path:
    """A fresh folder holding copies of the first `n` photos."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for p in photo_paths[:n]:
        shutil.copy(p, folder / p.name)
    return folder


def modules_after_a_photo_run(photo: Path, *args: str) -> set[str]:
    """The top-level modules a real `catdog-runtime PHOTO --json ARGS` process had loaded at its end."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['catdog-runtime', {str(photo)!r}, '--json', *{list(args)!r}]\n"
            "try:\n    runpy.run_module('catdog.runtime', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())
