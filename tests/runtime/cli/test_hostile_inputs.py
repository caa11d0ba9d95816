"""Inputs that used to hang a run, end it, or get a confident wrong answer: FIFOs, devices and
looping links in a folder, a model whose weights are NaN, file names that are not UTF-8, a 1x1
image, a stream that never answers. Real files, real processes, real ONNX sessions."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from testkit.runtime import build_model, copy_photos, meta, run_cli


@pytest.fixture
def folder(tmp_path, photos):
    return copy_photos(tmp_path / "in", photos, 2)


def _rows(stdout: str) -> dict[str, dict]:
    return {row["source"]: row for row in map(json.loads, stdout.splitlines())}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_device_and_looping_link_are_per_file_errors_not_a_hang(models, folder):
    os.mkfifo(folder / "b.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    (folder / "x.jpg").symlink_to("x.jpg")  # links to itself
    r = run_cli(folder, "--model", models["float"], "--json", timeout=60)
    rows = _rows(r.stdout)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "is a FIFO, not an image file" in rows[str(folder / "b.jpg")]["error"]
    assert "is a device, not an image file" in rows[str(folder / "zero.jpg")]["error"]
    assert "Too many levels of symbolic links" in rows[str(folder / "x.jpg")]["error"]
    assert sum("label" in row for row in rows.values()) == 2  # the good photos were classified
    assert "2 ok, 3 failed" in r.stderr


def test_a_nan_model_never_reports_success(tmp_path, folder):
    path = build_model(tmp_path / "nan.onnx", metadata=meta())
    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if t.name == "fc_w":
            t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, np.nan, np.float32), t.name))
    onnx.save(model, str(path))
    r = run_cli(folder, "--model", path, "--json", "--csv", tmp_path / "o.csv")
    assert r.returncode == 1, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # strict JSON: NaN would not parse
    assert len(rows) == 2 and all("NaN/inf scores" in row["error"] and "label" not in row for row in rows)
    assert "0 ok, 2 failed" in r.stderr and "accuracy" not in r.stderr
    table = list(csv.reader((tmp_path / "o.csv").open()))
    assert all(row[1] == "" and "NaN/inf" in row[4] for row in table[1:])
    one = run_cli(folder / "cat.168.jpg", "--model", path)
    assert one.returncode == 1 and "NaN/inf scores" in one.stdout + one.stderr


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_names_that_are_not_utf8_come_out_as_valid_utf8(models, folder, tmp_path, photos):
    raw = os.fsencode(folder) + b"/caf\xe9\xff.jpg"
    shutil.copy(photos[0], raw)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # a strict UTF-8 stdout must not kill the run
    out = tmp_path / "o.csv"
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", str(folder), "--model", str(models["float"]),
                        "--json", "--csv", str(out), "--provider", "cpu"], capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = r.stdout.decode("utf-8").splitlines()  # strict: raises on any byte that is not UTF-8
    sources = [json.loads(line)["source"] for line in lines]
    assert f"{folder}/caf\\xe9\\xff.jpg" in sources
    text = out.read_bytes().decode("utf-8")
    assert "caf\\xe9\\xff.jpg" in text and len(list(csv.reader(text.splitlines()))) == 4
    table = run_cli(folder, "--model", models["float"])  # the plain table too
    assert table.returncode == 0 and "caf\\xe9\\xff.jpg" in table.stdout


def test_a_one_pixel_image_is_refused_not_labelled(models, folder):
    import cv2

    cv2.imwrite(str(folder / "pixel.png"), np.full((1, 1, 3), 200, np.uint8))
    r = run_cli(folder, "--model", models["float"], "--json")
    rows = _rows(r.stdout)
    assert r.returncode == 1
    assert "1x1 pixels is too small to classify" in rows[str(folder / "pixel.png")]["error"]


def test_a_stream_that_never_answers_says_it_is_waiting(models):
    """A server that accepts the connection and then says nothing: the run must say what it waits for."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/stream.mjpg"
    p = subprocess.Popen([sys.executable, "-m", "catdog.runtime", url, "--model", str(models["float"]),
                          "--provider", "cpu", "--reconnects", "0"], stderr=subprocess.PIPE, text=True)
    try:
        t0, seen = time.monotonic(), ""
        while time.monotonic() - t0 < 60 and "waiting for the stream" not in seen:
            line = p.stderr.readline()
            if not line:
                break
            seen += line
        assert "connecting; waiting for the stream to answer (up to " in seen, seen  # its timeout: live.capture
    finally:
        p.kill()
        p.wait(10)
        srv.close()


# -- issue 32: credentials, the shared image-size guard, damaged JPEGs, a lying model, deep JSON ----------------

class _AuthMjpegCamera:
    """A real HTTP MJPEG camera on 127.0.0.1 that wants basic auth (admin:hunter2), as IP cameras do:
    401 with a Basic challenge without it, frames of a real photo with it."""

    def __init__(self, photo, user: str = "admin", password: str = "hunter2"):
        import base64
        import http.server
        import threading

        import cv2

        jpg = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(photo)), (64, 48)))[1].tobytes()
        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.authorized = self.refused = 0
        self.stopped = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.headers.get("Authorization") != want:
                    outer.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.authorized += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not outer.stopped.is_set():
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        time.sleep(0.05)
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def test_camera_credentials_never_leave_the_process(models, photos, tmp_path):
    """The URL's password and token reach the camera (it answers only with them) and nothing else:
    not stdout's JSON, the CSV, stderr's lines and summary, /healthz (no token needed), /api/latest,
    /metrics or the page."""
    from testkit.serve import ServerProc

    cam = _AuthMjpegCamera(photos[0])
    url = f"http://admin:hunter2@127.0.0.1:{cam.port}/stream.mjpg?token=s3cr3t&fps=5"
    shown = f"http://***@127.0.0.1:{cam.port}/stream.mjpg?token=***&fps=5"
    out = tmp_path / "o.csv"
    srv = ServerProc(url, "--model", models["float"], "--json", "--csv", out, "--token", "T0K", "--reconnects", "0")
    try:
        auth = {"Authorization": "Bearer T0K"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.request("GET", "/api/latest", headers=auth)[0] != 200:
            time.sleep(0.2)
        seen = {path: srv.request("GET", path, headers=auth)[2].decode()
                for path in ("/healthz", "/api/latest", "/metrics", "/")}
        seen["/healthz (no token)"] = srv.request("GET", "/healthz")[2].decode()
    finally:
        code, stdout, stderr = srv.stop()
        cam.stop()
    assert cam.authorized >= 1, stderr  # the real URL, credentials included, reached the camera
    assert json.loads(seen["/healthz (no token)"])["source"] == shown
    assert json.loads(seen["/api/latest"])["source"].startswith(shown + "#")
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert rows and all(r["source"].startswith(shown + "#") for r in rows), stdout[:500]
    assert f"stream {shown}" in stderr  # the summary names the source, redacted
    everything = {**seen, "stdout": stdout, "stderr": stderr, "csv": out.read_text()}
    for where, text in everything.items():
        assert "hunter2" not in text and "s3cr3t" not in text and "admin:" not in text, (where, text[:2000])
    assert code == 143 and "Traceback" not in stderr


def test_credentials_of_a_stream_that_cannot_connect_are_not_printed(models, tmp_path):
    out = tmp_path / "o.csv"
    r = run_cli("rtsp://admin:hunter2@127.0.0.1:9/live?password=hunter3", "--model", models["float"], "--json",
                "--csv", out, "--reconnects", "0", timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "stream rtsp://***@127.0.0.1:9/live?password=***: cannot connect" in r.stderr, r.stderr
    for text in (r.stdout, r.stderr, out.read_text() if out.exists() else ""):
        assert "hunter2" not in text and "hunter3" not in text


def _hostile_images(tmp_path, photos):
    import cv2

    from catdog.runtime.spine.images import header_size

    d = tmp_path / "hostile"
    d.mkdir()
    for name, (h, w) in {"pixel.png": (1, 1), "strip.png": (20000, 8), "thin.png": (2000, 1)}.items():
        cv2.imwrite(str(d / name), np.zeros((h, w, 3), np.uint8))
    assert (d / "strip.png").stat().st_size < 30_000 and header_size((d / "strip.png").read_bytes()) == (8, 20000)
    photo = photos[0].read_bytes()
    mid = len(photo) // 2
    (d / "damaged.jpg").write_bytes(photo[:mid] + photo[mid + 300:])  # 300 bytes of scan data lost
    (d / "cut.jpg").write_bytes(photo[:mid] + b"\xff\xd9")
    shutil.copy(photos[1], d / photos[1].name)
    return d


def test_cli_and_api_refuse_the_same_hostile_images_with_the_same_words(models, photos, tmp_path):
    """One guard for both paths: the API used to label a 1x1 image the CLI refused, and both labelled
    damaged JPEGs with exit 0 / 200 (only libjpeg's own line on stderr)."""
    from testkit.serve import ServerProc

    d = _hostile_images(tmp_path, photos)
    r = run_cli(d, "--model", models["float"], "--json")
    rows = {os.path.basename(k): v for k, v in _rows(r.stdout).items()}
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Corrupt JPEG data" not in r.stderr.replace(
        "(libjpeg: Corrupt JPEG data", "")
    assert "label" in rows[photos[1].name] and "5 failed" in r.stderr
    want = {"pixel.png": "1x1 pixels is too small to classify", "strip.png": "8x20000 pixels is too elongated",
            "thin.png": "1x2000 pixels is too small", "damaged.jpg": "damaged JPEG (libjpeg: Corrupt JPEG data",
            "cut.jpg": "damaged JPEG (libjpeg: Corrupt JPEG data"}
    srv = ServerProc("--model", models["float"])
    try:
        for name, why in want.items():
            cli = rows[name]["error"]
            status, body = srv.json("POST", "/api/predict", (d / name).read_bytes(), {"Content-Type": "image/png"})
            assert why in cli and status == 400, (name, cli, status, body)
            assert body["error"].split(": ", 1)[1] == cli.split(": ", 1)[1]  # the same words, another name
        status, body = srv.json("POST", "/api/predict", photos[1].read_bytes(), {"Content-Type": "image/jpeg"})
        assert status == 200 and "label" in body
    finally:
        code, _, stderr = srv.stop()
    assert "Traceback" not in stderr and "Corrupt JPEG data: " not in stderr.replace("(libjpeg: Corrupt", "")


def _peak_rss_mb(*args) -> tuple[float, subprocess.CompletedProcess]:
    """Peak RSS (MB) of a real `catdog-runtime` run, its own VmHWM read at exit (wait4's ru_maxrss would
    also count the pytest pages the child was forked from: Linux keeps the pre-exec peak)."""
    code = ("import atexit, re, runpy, sys\n"
            "atexit.register(lambda: sys.stderr.write('PEAK_KB %s\\n' % re.search(r'VmHWM:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1)))\n"
            "sys.argv = ['catdog-runtime', *sys.argv[1:]]\n"
            "runpy.run_module('catdog.runtime', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args), "--provider", "cpu", "--json"],
                       capture_output=True, text=True, timeout=120)
    return int(re.search(r"PEAK_KB (\d+)", r.stderr).group(1)) / 1024, r


def test_a_tiny_hostile_image_costs_less_than_twice_a_normal_photo(tmp_path, photos):
    """The bomb guard counted the header's pixels, not the resize's: a 557-byte 8x20000 PNG, resized to
    a 293-pixel shorter side, made 293x732000 pixels (640 MB). Now refused before decoding."""
    from testkit.runtime import build_model

    from catdog.runtime.spine.spec import PreprocessSpec

    spec = PreprocessSpec(size=260, resize=293, interpolation="bicubic")  # the shipped lite2's geometry
    model = build_model(tmp_path / "m.onnx", metadata=meta(spec=spec), size=260, spec=spec)
    d = _hostile_images(tmp_path, photos)
    normal, ok = _peak_rss_mb(photos[1], "--model", model)
    assert ok.returncode == 0, ok.stderr
    for name in ("strip.png", "thin.png"):
        peak, r = _peak_rss_mb(d / name, "--model", model)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert peak < 2 * normal, (name, peak, normal)  # was 8x20000: ~740 MB against ~100 MB


def test_a_model_whose_metadata_says_probs_but_gives_logits_is_refused(tmp_path, folder):
    """`output: probs` on a graph without its softmax: the scores were reported as they came (a score
    of 5.51, a probability of -4.76) and the run said ok."""
    from testkit.serve import ServerProc

    bias = np.array([5.0, -5.0], np.float32)  # logits far outside [0, 1] on any photo
    liar = build_model(tmp_path / "liar.onnx", metadata=meta(output="probs"), fc_b=bias)
    for args in ((folder, "--json"), (folder / "cat.168.jpg",)):
        r = run_cli(*args, "--model", liar)
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and "Traceback" not in r.stderr and '"label"' not in r.stdout, r.stdout + r.stderr
        assert len(err) == 1 and "says the output is probabilities (output: probs) but the model gives values" in err[0]
        assert "outside [0, 1]" in err[0] and "liar.onnx" in err[0]
    with pytest.raises(AssertionError, match="output: probs"):  # the API-only server refuses to start
        ServerProc("--model", liar, timeout=60)
    honest = build_model(tmp_path / "honest.onnx", metadata=meta(output="probs"), softmax_out=True)
    assert run_cli(folder, "--model", honest).returncode == 0


@pytest.mark.parametrize("where", ["metadata", "labels"])
def test_json_nested_too_deep_is_one_line_not_a_recursion_error(tmp_path, folder, where):
    from onnx import helper

    from catdog.runtime.spine.metadata import METADATA_KEY

    deep = "[" * 100_000 + "]" * 100_000
    if where == "metadata":
        model = onnx.load(str(build_model(tmp_path / "deep.onnx", metadata=meta())))
        del model.metadata_props[:]
        helper.set_model_props(model, {METADATA_KEY: deep})
        onnx.save(model, str(tmp_path / "deep.onnx"))
        args, named = ("--model", tmp_path / "deep.onnx"), "deep.onnx"
    else:
        (tmp_path / "deep.json").write_text(deep)
        args = ("--model", build_model(tmp_path / "nometa.onnx"), "--labels", tmp_path / "deep.json")
        named = "deep.json"
    r = run_cli(folder, *args)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
    assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert err[0].startswith("error:") and named in err[0] and "nested too deeply" in err[0], err
