"""--serve under faults (issue 32): a request that times out, a chunked body over the limit, a
foreign Host:, viewers that never read, connections that never finish a request, a file name that
is not UTF-8, an upload cut short, a missing [serve] extra, a token kept out of the command line.
Real servers on loopback ports (127.0.0.1:0), real HTTP and real ONNX sessions; every load is
bounded in count and time."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
from testkit.runtime import run_cli, write_video
from testkit.serve import (
    ServerProc,
    aborted_upload,
    chunked_post,
    closed_by_server,
    half_open,
    idle_viewer,
    mjpeg_frames,
    multipart,
)

JPEG = {"Content-Type": "image/jpeg"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photos):
    return write_video(tmp_path_factory.mktemp("faults") / "cam.avi", photos, 600, fps=25, size=(160, 120))


def _burst(s: ServerProc, body: bytes, n: int) -> list[int]:
    """n POSTs at once (one thread each, bounded): their statuses."""
    out: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        status = s.request("POST", "/api/predict", body, JPEG, timeout=60)[0]
        with lock:
            out.append(status)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return out


def _quiet(stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception in ASGI" not in stderr and "ERROR" not in stderr, stderr[-3000:]


# -- item 1: a timed-out request must not kill the batcher; /healthz tells the truth ---------------


def test_timeouts_leave_the_api_alive(data_dir):
    """The issue's reproduction: a small --request-timeout, one thread, a burst of POSTs. Before the
    fix the first 504's cancelled future killed the batcher and every later POST got 504."""
    photo = (data_dir / "dog.169.jpg").read_bytes()
    s = ServerProc("--request-timeout", "0.1", "--threads", "1")
    try:
        statuses = []
        for _ in range(3):  # at most 3 bursts of 48 until one request has timed out
            statuses += _burst(s, photo, 48)
            if 504 in statuses:
                break
        assert 504 in statuses, f"no request timed out ({sorted(set(statuses))}): the case was not reached"
        assert set(statuses) <= {200, 504}
        time.sleep(0.5)  # the burst's batches drain
        after: list[int] = []
        for _ in range(10):  # one at a time: ~10 ms each, far under 0.1 s (a retry or two on a loaded machine)
            for _ in range(4):
                after.append(s.request("POST", "/api/predict", photo, JPEG)[0])
                if after[-1] == 200:
                    break
        assert after.count(200) == 10, after  # before the fix: every one a 504, the batcher dead
        status, health = s.json("GET", "/healthz")
        assert status == 200 and health["status"] == "ok"
        assert s.metric('catdog_errors_total{kind="timeout"}') == statuses.count(504) + after.count(504)
    finally:
        code, _, stderr = s.stop(signal.SIGTERM)
    assert code == 143
    _quiet(stderr)


def test_a_client_may_ask_for_a_shorter_timeout(data_dir):
    photo = (data_dir / "cat.379.jpg").read_bytes()
    s = ServerProc()
    try:
        for bad in ("abc", "0", "-1", "nan", "inf"):
            status, err = s.json("POST", f"/api/predict?timeout={bad}", photo, JPEG)
            assert status == 400 and "timeout=" in err["error"], (bad, status, err)
        statuses = [s.json("POST", "/api/predict?timeout=0.000001", photo, JPEG)[0] for _ in range(5)]
        assert statuses == [504] * 5  # no batch is that quick: the batcher drops each unrun
        assert s.json("POST", "/api/predict?timeout=30", photo, JPEG)[0] == 200
        assert s.metric('catdog_errors_total{kind="timeout"}') == 5
    finally:
        code, _, stderr = s.stop(signal.SIGTERM)
    _quiet(stderr)


def test_healthz_says_so_when_the_batcher_has_stopped():
    """A real server in this process over the shipped model: once the batcher's thread has ended,
    /healthz is not 200 and a POST is refused at once (not a 504 after the timeout)."""
    import http.client

    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.engine.shipped import resolve_model
    from catdog.runtime.options import RunOptions
    from catdog.runtime.run import serve_options
    from catdog.runtime.serve.server import start

    clf = Classifier.from_file(resolve_model(None, "cpu"), provider="cpu", log=None)
    serving = start(serve_options(RunOptions(serve="127.0.0.1:0", request_timeout=30)), clf, "model", None,
                    lambda m: None)
    port = int(serving.url.rstrip("/").rsplit(":", 1)[1])

    def ask(method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(method, path, body=body, headers=JPEG)
        r = conn.getresponse()
        out = r.status, json.loads(r.read())
        conn.close()
        return out

    try:
        assert ask("GET", "/healthz")[0] == 200
        serving.batcher.close()
        assert not serving.batcher.alive
        status, health = ask("GET", "/healthz")
        assert status == 503 and health["status"] != "ok" and "predict" in health["error"], health
        t0 = time.monotonic()
        status, err = ask("POST", "/api/predict", (Path(__file__).parents[2] / "data" / "dog.jpg").read_bytes())
        assert status == 503 and time.monotonic() - t0 < 10, (status, err)
    finally:
        serving.stop()


# -- item 3: the body limit holds whatever the framing ---------------------------------------------


def test_a_chunked_multipart_body_over_the_limit_is_413(data_dir):
    """A valid photo with 3 MB after its end (decoders ignore it) as a chunked multipart upload to a
    --max-body-mb 1 server: 413 before the body is all read; the same photo alone still gets 200."""
    photo = (data_dir / "cat.168.jpg").read_bytes()
    s = ServerProc("--max-body-mb", "1")
    try:
        big, headers = multipart("file", "big.jpg", photo + b"\0" * 3_000_000)
        status, data = chunked_post(s.port, big, headers["Content-Type"])
        assert status == 413 and "limit" in json.loads(data)["error"], (status, data)
        raw_status, _ = chunked_post(s.port, photo + b"\0" * 3_000_000, "image/jpeg")
        assert raw_status == 413
        small, headers = multipart("file", "cat.jpg", photo)
        status, data = chunked_post(s.port, small, headers["Content-Type"])
        assert status == 200 and json.loads(data)["label"] == "cat", (status, data)
    finally:
        code, _, stderr = s.stop(signal.SIGTERM)
    _quiet(stderr)


# -- item 5: the Host header (DNS rebinding) -------------------------------------------------------


def test_only_this_servers_names_are_answered():
    s = ServerProc("--allow-host", "cam.lan", "--allow-host", "Pet-Door.local")
    try:
        for host in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", "localhost", "127.0.0.5", f"[::1]:{s.port}",
                     "cam.lan", f"CAM.LAN:{s.port}", "pet-door.local"):
            assert s.request("GET", "/healthz", headers={"Host": host})[0] == 200, host
        for host in ("evil.example", f"evil.example:{s.port}", "127.0.0.1.evil.example", "cam.lan.evil.example"):
            status, _, data = s.request("GET", "/api/latest", headers={"Host": host})
            err = json.loads(data)["error"]
            assert status == 403 and "--allow-host" in err and "\n" not in err, (host, status, err)
        assert s.request("GET", "/healthz", headers={"Host": "evil.example"})[0] == 403
    finally:
        s.kill()


def test_a_loopback_server_without_allow_host_refuses_a_foreign_name():
    s = ServerProc()
    try:
        status, err = s.json("GET", "/healthz", headers={"Host": "attacker.example:8080"})
        assert status == 403 and "attacker.example" in err["error"]
        assert s.json("GET", "/healthz")[0] == 200
    finally:
        s.kill()


def test_the_names_a_server_answers_to():
    """The allowed set itself (serving beyond loopback cannot be tried on a loopback-only test box):
    loopback binds know only loopback names; a wildcard bind adds this machine's own names; a port or
    a trailing dot does not change a name."""
    import socket

    from catdog.runtime.serve.guards import host_allowed, host_name
    from catdog.runtime.serve.server import allowed_hosts

    local = allowed_hosts("127.0.0.1", ("Cam.LAN",))
    assert local == {"localhost", "127.0.0.1", "cam.lan"}
    wide = allowed_hosts("0.0.0.0", ())
    assert socket.gethostname().lower() in wide and "localhost" in wide
    assert host_name("Cam.Lan.:8080") == "cam.lan" and host_name("[::1]:80") == "::1" and host_name("x") == "x"
    assert host_allowed("10.1.2.3", wide, "10.1.2.3") and not host_allowed("10.1.2.4", wide, "10.1.2.3")
    assert host_allowed("127.9.9.9", local, "127.0.0.1") and not host_allowed("evil.example", local, "127.0.0.1")
    assert host_allowed("anything", frozenset({"*"}), None)


# -- item 6: idle viewers and half-open connections ------------------------------------------------


def test_viewers_that_never_read_give_their_slots_back(clip):
    s = ServerProc(clip, "--realtime", "--max-viewers", "2", "--idle-timeout", "1")
    idle = [idle_viewer(s.port) for _ in range(2)]
    try:
        time.sleep(0.5)
        assert s.json("GET", "/stream.mjpg")[0] == 503  # both slots taken
        frames: list[bytes] = []
        deadline = time.monotonic() + 20
        while not frames and time.monotonic() < deadline:
            try:
                frames = mjpeg_frames(s.port, 2, timeout=10)
            except AssertionError:  # 503: the idle ones still hold the slots
                time.sleep(0.5)
        assert len(frames) == 2, "the idle viewers kept every slot"
        assert all(closed_by_server(v, 10) for v in idle)
        assert s.metric('catdog_errors_total{kind="stalled_viewer"}') == 2
    finally:
        for v in idle:
            v.close()
        code, _, stderr = s.stop(signal.SIGTERM)
    _quiet(stderr)


def test_half_open_and_idle_connections_are_closed(data_dir):
    """120 connections that send nothing, 60 that send half a request head, 10 keep-alive
    connections left idle after a request and 10 uploads that stop mid-body: the server closes every
    one within a bounded time, and still answers."""
    s = ServerProc("--idle-timeout", "1")
    socks = []
    try:
        socks += [half_open(s.port) for _ in range(120)]
        socks += [half_open(s.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(60)]
        for _ in range(10):
            k = half_open(s.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(k)
        stalled = [half_open(s.port, b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: 100000\r\n\r\n" + b"\xff" * 5000) for _ in range(10)]
        t0 = time.monotonic()
        assert all(closed_by_server(c, 15) for c in socks + stalled)
        assert time.monotonic() - t0 < 15
        assert s.json("GET", "/healthz")[0] == 200
        assert s.metric('catdog_errors_total{kind="stalled_body"}') == 10
    finally:
        for c in socks:
            c.close()
        code, _, stderr = s.stop(signal.SIGTERM)
    _quiet(stderr)


# -- item 7: a file name that is not UTF-8 ---------------------------------------------------------


def test_a_non_utf8_file_name_is_shown_safely(tmp_path, data_dir):
    """A folder of photos whose names are not UTF-8 (b'\\xff-NNN.jpg'), served while the run goes
    through them: /api/latest answers 200 with the name as the CLI's JSON shows it (\\xff)."""
    import cv2

    small = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(data_dir / "cat.168.jpg")), (96, 96)))[1].tobytes()
    folder = tmp_path / "odd"
    folder.mkdir()
    for i in range(300):
        Path(os.fsdecode(bytes(folder) + b"/\xff-%03d.jpg" % i)).write_bytes(small)
    s = ServerProc(folder, "--batch", "4")
    try:
        status, data = 404, b""
        for _ in range(200):
            status, _, data = s.request("GET", "/api/latest")
            if status != 404:
                break
            time.sleep(0.02)
        assert status == 200, data
        latest = json.loads(data)
        assert "\\xff-" in latest["source"], latest["source"]
        status, _, data = s.request("GET", "/healthz")
        assert status == 200 and json.loads(data)["source"].endswith("odd"), data
    finally:
        code, out, stderr = s.stop(signal.SIGTERM)
    _quiet(stderr)


# -- item 8: an upload cut short -------------------------------------------------------------------


def test_aborted_uploads_are_counted_without_a_traceback(data_dir):
    s = ServerProc()
    try:
        for _ in range(10):
            aborted_upload(s.port)
        for _ in range(50):
            if s.metric('catdog_errors_total{kind="aborted"}') == 10:
                break
            time.sleep(0.1)
        assert s.metric('catdog_errors_total{kind="aborted"}') == 10
        photo = (data_dir / "cat.379.jpg").read_bytes()
        assert s.request("POST", "/api/predict", photo, JPEG)[0] == 200
    finally:
        code, _, stderr = s.stop(signal.SIGTERM)
    assert code == 143
    _quiet(stderr)


# -- item 9: the [serve] extra, checked before anything loads ---------------------------------------


def test_serve_without_the_extra_says_which_to_install(tmp_path):
    shim = tmp_path / "shim" / "uvicorn"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'uvicorn'\", name='uvicorn')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])}
    # a model that does not exist: were it loaded first, the error would be about the model
    r = run_cli("--serve", "127.0.0.1:0", "--model", tmp_path / "missing.onnx", env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'catdog-edge[serve]'" in lines[0] and "uvicorn" in lines[0], lines


# -- item 10: the token from a file, not the command line ------------------------------------------


def test_the_token_may_come_from_a_file_and_stays_off_the_command_line(tmp_path):
    secret = "f3a9c1d2e4b5a6978812736455463728"
    path = tmp_path / "token"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    s = ServerProc("--token-file", path)
    try:
        assert secret not in Path(f"/proc/{s.p.pid}/cmdline").read_bytes().decode(errors="replace")
        assert s.request("GET", "/api/latest")[0] == 401
        assert s.request("GET", "/metrics", headers={"Authorization": f"Bearer {secret}"})[0] == 200
        assert not any("warning" in line for line in s.err)
    finally:
        s.kill()


def test_a_token_file_readable_by_others_is_warned_about(tmp_path):
    path = tmp_path / "token"
    path.write_text("abc123\n")
    path.chmod(0o644)
    s = ServerProc("--token-file", path)
    try:
        said = "".join(s.err)
        assert said.count("warning: --token-file") == 1 and "chmod 600" in said, said
        assert s.request("GET", "/metrics", headers={"Authorization": "Bearer abc123"})[0] == 200
    finally:
        s.kill()


@pytest.mark.parametrize("case, words", [
    ("missing", "no such file"),
    ("empty", "is empty"),
    ("folder", "not a file"),
    ("both", "give one"),
])
def test_a_bad_token_file_is_one_line(tmp_path, case, words):
    path = tmp_path / "token"
    extra: list = []
    if case == "empty":
        path.write_text("  \n")
    elif case == "folder":
        path.mkdir()
    elif case == "both":
        path.write_text("abc\n")
        extra = ["--token", "abc"]
    if path.exists() and not path.is_dir():
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    r = run_cli("--serve", "127.0.0.1:0", "--token-file", path, *extra, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # checked before the model loads: nothing else said
    assert lines[0].startswith("error: ") and words in lines[0] and "--token-file" in lines[0], lines
