"""--serve is safe by default: the token on every route but /healthz (a header for programs, a
cookie set by /?token= for the page), a body limit, a viewer cap, loopback unless told otherwise;
it survives viewers that vanish mid-frame, and SIGTERM under load leaves every output complete.
Real processes on loopback ports."""

from __future__ import annotations

import csv
import json
import signal
import socket
import struct
import threading
import time

import cv2
import pytest
from testkit.runtime import modules_after_a_photo_run, run_cli, write_video
from testkit.serve import ServerProc, mjpeg_frames

from catdog.runtime.options import RunOptions
from catdog.runtime.run import serve_options
from catdog.runtime.serve.server import auth_token, parse_address


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photos):
    return write_video(tmp_path_factory.mktemp("safe") / "cam.avi", photos, 600, fps=25, size=(160, 120))


def test_the_token_guards_every_route_but_healthz(clip):
    s = ServerProc(clip, "--realtime", "--token", "s3cret")
    try:
        for path in ("/api/latest", "/metrics", "/stream.mjpg", "/api/events", "/"):
            status, _, body = s.request("GET", path)
            assert status == 401 and "token" in json.loads(body)["error"], path
        assert s.request("POST", "/api/predict", b"x", {"Content-Type": "image/jpeg"})[0] == 401
        assert s.request("GET", "/api/latest", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.json("GET", "/healthz")[0] == 200
        time.sleep(0.5)
        assert s.request("GET", "/api/latest", headers={"Authorization": "Bearer s3cret"})[0] == 200
        status, headers, _ = s.request("GET", "/?token=s3cret")  # the page's way: a cookie, then no token in the URL
        assert status == 303 and headers["location"] == "./"
        cookie = headers["set-cookie"]
        assert "httponly" in cookie.lower() and "s3cret" not in cookie
        jar = {"Cookie": cookie.split(";")[0]}
        assert s.request("GET", "/", headers=jar)[0] == 200
        assert mjpeg_frames(s.port, 2, headers=jar)  # what the page's <img> does
        assert s.request("GET", "/?token=wrong")[0] == 401
    finally:
        s.kill()


def test_the_token_may_come_from_the_environment(clip):
    import os

    s = ServerProc(clip, "--realtime", env={**os.environ, "CATDOG_TOKEN": "envtok"})
    try:
        assert s.request("GET", "/api/latest")[0] == 401
        assert s.request("GET", "/metrics", headers={"Authorization": "Bearer envtok"})[0] == 200
    finally:
        s.kill()


def test_an_oversized_body_is_413(clip, data_dir):
    s = ServerProc(clip, "--realtime", "--max-body-mb", "0.01")
    try:
        photo = (data_dir / "cat.168.jpg").read_bytes()
        assert len(photo) > 10_000
        status, err = s.json("POST", "/api/predict", photo, {"Content-Type": "image/jpeg"})
        assert status == 413 and "limit" in err["error"]
    finally:
        s.kill()


def test_non_loopback_needs_a_token_or_an_explicit_no_auth():
    r = run_cli("--serve", "0.0.0.0:8123")  # refused before anything binds
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: --serve 0.0.0.0: a non-loopback address needs --token")
    said: list[str] = []
    assert auth_token(serve_options(RunOptions(serve="0.0.0.0:8123", no_auth=True)), "0.0.0.0", said.append) is None
    assert said and said[0].startswith("warning: --no-auth")
    assert parse_address("8080") == ("127.0.0.1", 8080) and parse_address("[::1]:90") == ("::1", 90)
    with pytest.raises(Exception, match="HOST:]PORT"):
        parse_address("localhost:http")


def _vanish(port: int) -> None:
    """A viewer that asks for the stream, takes a few bytes of a frame and resets the connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.recv(300)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
    sock.close()


def test_the_server_survives_50_viewers_that_vanish_mid_frame(clip):
    s = ServerProc(clip, "--realtime", "--max-viewers", "64")
    try:
        threads = [threading.Thread(target=_vanish, args=(s.port,)) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s.json("GET", "/healthz")[1]["status"] == "ok"
        assert len(mjpeg_frames(s.port, 3)) == 3
        for _ in range(100):  # every vanished viewer's place is given back
            body = s.request("GET", "/metrics")[2].decode()
            if "catdog_stream_viewers 0.0" in body:
                break
            time.sleep(0.1)
        assert "catdog_stream_viewers 0.0" in body
        assert s.p.poll() is None
    finally:
        s.kill()


def test_sigterm_mid_load_leaves_complete_outputs(clip, tmp_path, data_dir):
    out, table = tmp_path / "out.mp4", tmp_path / "o.csv"
    s = ServerProc(clip, "--realtime", "--save", out, "--csv", table, "--json")
    photo = (data_dir / "dog.169.jpg").read_bytes()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                s.request("POST", "/api/predict", photo, {"Content-Type": "image/jpeg"}, timeout=5)
            except OSError:
                return

    clients = [threading.Thread(target=load) for _ in range(4)]
    for t in clients:
        t.start()
    time.sleep(2.0)
    code, stdout, stderr = s.stop(signal.SIGTERM)
    stop.set()
    for t in clients:
        t.join()
    assert code == 143, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    rows = list(csv.reader(table.open()))[1:]
    assert lines and [r[0] for r in rows] == [x["source"] for x in lines]
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(lines)
    cap.release()
    assert not list(tmp_path.glob(".out.partial*")) and "served" in stderr


def test_api_alone_without_a_source(data_dir):
    s = ServerProc()
    try:
        status, err = s.json("GET", "/api/latest")
        assert status == 404 and "no SOURCE" in err["error"]
        status, got = s.json("POST", "/api/predict", (data_dir / "cat.379.jpg").read_bytes(),
                             {"Content-Type": "image/jpeg"})
        assert status == 200 and got["label"] == "cat"
        assert s.json("GET", "/healthz")[1]["source"] is None
    finally:
        code, _, stderr = s.stop(signal.SIGTERM)
    assert code == 143 and "1 API prediction(s)" in stderr


def test_a_photo_run_never_imports_the_web_stack(dog_jpg):
    loaded = modules_after_a_photo_run(dog_jpg, "--provider", "cpu")
    assert not loaded & {"starlette", "uvicorn", "prometheus_client", "anyio", "multipart"}


def test_stopping_with_viewers_connected_is_quick_and_quiet(clip):
    s = ServerProc(clip, "--realtime")
    stop = threading.Event()
    watchers = [threading.Thread(target=lambda: _watch(s.port, stop), daemon=True) for _ in range(2)]
    for t in watchers:
        t.start()
    time.sleep(1.5)
    t0 = time.monotonic()
    code, _, stderr = s.stop(signal.SIGTERM)
    stop.set()
    assert code == 143 and time.monotonic() - t0 < 5.0
    assert "Traceback" not in stderr and "CancelledError" not in stderr and "ERROR" not in stderr, stderr


def _watch(port: int, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            mjpeg_frames(port, 1, timeout=10)
    except (OSError, AssertionError):
        return
