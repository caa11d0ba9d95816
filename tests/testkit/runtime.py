"""Test helpers for the runtime (a uniquely named module, not conftest, so imports never pick up
another stage's conftest): real ONNX models built with onnx.helper (no torch: these tests also run
in the torch-free venv), a numpy reference of the same network, OpenCV-written videos, the CLI."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata
from catdog.runtime.spine.spec import PreprocessSpec

SPEC = PreprocessSpec(size=32, resize=36, interpolation="bilinear")
PHOTOS = ["cat.168.jpg", "cat.193.jpg", "cat.379.jpg", "dog.169.jpg", "dog.319.jpg", "dog.381.jpg"]
HIDDEN = 4


def weights(classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv_w": rng.normal(0, 0.5, (HIDDEN, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, (HIDDEN,)).astype(np.float32),
        "fc_w": rng.normal(0, 1.0, (classes, HIDDEN)).astype(np.float32),
        "fc_b": rng.normal(0, 0.1, (classes,)).astype(np.float32),
    }


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


def build_model(path: Path, *, classes: int = 2, metadata: ModelMetadata | dict | None = None,
                input_format: str = "float", size: int | str = 32, softmax_out: bool = False,
                batch: int | str = "N", rank2: bool = False, seed: int = 0,
                spec: PreprocessSpec = SPEC, fc_b: np.ndarray | None = None) -> Path:
    """A tiny real classifier. uint8: NHWC uint8 input with the normalisation baked into the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = weights(classes, seed)
    if fc_b is not None:
        w["fc_b"] = fc_b.astype(np.float32)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    nodes = []
    if rank2:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3 * 32 * 32])
        nodes.append(helper.make_node("Reshape", ["input", "shape4"], ["x"]))
        inits.append(numpy_helper.from_array(np.array([-1, 3, 32, 32], np.int64), "shape4"))
    elif input_format == "uint8":
        inp = helper.make_tensor_value_info("input", TensorProto.UINT8, [batch, size, size, 3])
        std = np.asarray(spec.std, np.float32)
        inits += [numpy_helper.from_array((np.float32(spec.scale) / std).reshape(1, 1, 1, 3), "a"),
                  numpy_helper.from_array((np.asarray(spec.mean, np.float32) / std).reshape(1, 1, 1, 3), "b")]
        nodes += [helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["xf", "a"], ["xa"]),
                  helper.make_node("Sub", ["xa", "b"], ["xn"]),
                  helper.make_node("Transpose", ["xn"], ["x"], perm=[0, 3, 1, 2])]
    else:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
        nodes.append(helper.make_node("Identity", ["input"], ["x"]))
    nodes += [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    out_name = "logits"
    if softmax_out:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out_name = "probs"
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, classes])
    graph = helper.make_graph(nodes, "tiny", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        text = metadata.to_json() if isinstance(metadata, ModelMetadata) else json.dumps(metadata)
        helper.set_model_props(model, {METADATA_KEY: text})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def meta(classes=("cat", "dog"), **kw) -> ModelMetadata:
    return ModelMetadata(classes=tuple(classes), spec=kw.pop("spec", SPEC), arch="tiny", **kw)


def write_video(path: Path, photo_paths: list[Path], frames: int, fourcc: str = "MJPG", fps: float = 10.0,
                size: tuple[int, int] = (64, 48)) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert vw.isOpened(), f"OpenCV cannot write {fourcc} here"
    imgs = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in photo_paths]
    for i in range(frames):
        vw.write(imgs[i % len(imgs)])
    vw.release()
    return path


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


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding only the Orientation tag (0x0112) after SOI."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
