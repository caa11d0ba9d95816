"""Every route of `catdog-runtime SOURCE --serve`, against the real server in a real process on a
loopback port (no mocks of the server): predict equals the runtime's --json for the same photo,
latest/events carry the same prediction, MJPEG frames decode and change, /metrics parses, and
bad requests are one-line JSON 4xx errors."""

from __future__ import annotations

import json
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
from testkit.runtime import run_cli, write_video
from testkit.serve import ServerProc, mjpeg_frames, multipart

PHOTOS = ("cat.168.jpg", "dog.169.jpg", "cat.379.jpg")


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photos):
    return write_video(tmp_path_factory.mktemp("serve") / "cam.avi", photos, 600, fps=25, size=(160, 120))


@pytest.fixture(scope="module")
def server(clip):
    s = ServerProc(clip, "--realtime", "--max-viewers", "3")
    yield s
    s.kill()


def _runtime_json(path) -> dict:
    r = run_cli(path, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("form", ["raw", "multipart"])
def test_predict_is_the_runtime_json_for_the_same_photo(server, data_dir, form):
    for name in PHOTOS:
        data = (data_dir / name).read_bytes()
        body, headers = multipart("file", name, data) if form == "multipart" else (data, {"Content-Type": "image/jpeg"})
        status, got = server.json("POST", "/api/predict", body, headers)
        want = _runtime_json(data_dir / name)
        assert status == 200 and set(got) == set(want) == {"source", "label", "score", "probs"}
        assert got["label"] == want["label"] and got["score"] == pytest.approx(want["score"], abs=1e-6)
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-6)
        assert got["source"] == (name if form == "multipart" else "upload")


def test_latest_and_events_carry_the_prediction_schema(server):
    status, latest = server.json("GET", "/api/latest")
    assert status == 200
    assert {"source", "label", "score", "probs"} <= set(latest)  # the --json line's keys, then more
    assert {"frame", "time", "topk", "unsure", "stage_ms", "fps", "model", "provider"} <= set(latest)
    assert latest["label"] in latest["probs"] and sum(latest["probs"].values()) == pytest.approx(1, abs=1e-5)
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/api/events")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/event-stream")
    events = []
    while len(events) < 3:
        line = r.fp.readline().decode()
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    conn.close()
    assert [set(e) for e in events] == [set(latest)] * 3
    assert events[0]["frame"] < events[1]["frame"] < events[2]["frame"]  # pushed as the video plays


def test_mjpeg_frames_decode_and_change(server):
    frames = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in mjpeg_frames(server.port, 12)]
    assert all(f is not None and f.shape == (120, 160, 3) for f in frames)
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, frames[1:], strict=False)]
    assert max(diffs) > 5  # the video plays: the photos change every frame


def test_metrics_parse_as_prometheus_text(server):
    from prometheus_client.parser import text_string_to_metric_families

    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("catdog_frames", "catdog_predictions", "catdog_stage_seconds", "catdog_stream_viewers",
                 "catdog_predict_queue_depth", "catdog_predict_seconds"):
        assert name in families, sorted(families)
    frames = next(s.value for s in families["catdog_frames"].samples if s.name == "catdog_frames_total")
    assert frames > 0


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


@pytest.mark.parametrize("body, kind, status, words", [
    (b"", "image/jpeg", 400, "empty body"),
    (b"just some text, not a picture", "text/plain", 415, "not an image"),
    (b"just some text, not a picture", "image/jpeg", 400, "not a readable image"),
    (_png_claiming(40000, 40000), "image/png", 400, "decompression bomb"),
])
def test_bad_bodies_are_one_line_json_errors(server, body, kind, status, words):
    got, headers, data = server.request("POST", "/api/predict", body, {"Content-Type": kind})
    assert got == status and headers["content-type"] == "application/json"
    err = json.loads(data)
    assert list(err) == ["error"] and words in err["error"] and "\n" not in err["error"]


def test_a_truncated_jpeg_is_a_400(server, data_dir):
    data = (data_dir / "cat.168.jpg").read_bytes()
    status, err = server.json("POST", "/api/predict", data[: len(data) // 3], {"Content-Type": "image/jpeg"})
    assert status == 400 and "error" in err


def test_unknown_routes_and_methods_are_json_too(server):
    assert server.json("GET", "/nope")[0] == 404
    status, err = server.json("GET", "/api/predict")
    assert status == 405 and "error" in err


def test_the_viewer_over_the_cap_gets_503(server):
    import http.client

    open_ = []
    try:
        for _ in range(3):  # --max-viewers 3
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/stream.mjpg")
            assert conn.getresponse().status == 200
            open_.append(conn)
        status, err = server.json("GET", "/stream.mjpg")
        assert status == 503 and "cap" in err["error"]
    finally:
        for conn in open_:
            conn.close()
    frames = []
    for _ in range(50):  # the closed viewers' places come free
        try:
            frames = mjpeg_frames(server.port, 1, timeout=10)
            break
        except AssertionError:
            threading.Event().wait(0.1)
    assert frames


def test_concurrent_predictions_share_session_calls(server, data_dir):
    data = (data_dir / "dog.169.jpg").read_bytes()

    def gauge(name: str) -> float:
        body = server.request("GET", "/metrics")[2].decode()
        return float(next(line.split()[-1] for line in body.splitlines() if line.startswith(name + " ")))

    before_b, before_i = gauge("catdog_predict_batches"), gauge("catdog_predict_batched_items")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        server.json("POST", "/api/predict", data, {"Content-Type": "image/jpeg"}))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in results] == [200] * 16 and {r["label"] for _, r in results} == {"dog"}
    items, batches = gauge("catdog_predict_batched_items") - before_i, gauge("catdog_predict_batches") - before_b
    assert items == 16 and batches < 16, (items, batches)


def test_the_stream_keeps_its_own_pace_and_inference_its_own(clip):
    s = ServerProc(clip, "--realtime", "--stream-fps", "5")
    try:
        def frames_total() -> float:
            body = s.request("GET", "/metrics")[2].decode()
            return float(next(line.split()[-1] for line in body.splitlines() if line.startswith("catdog_frames_total")))

        mjpeg_frames(s.port, 1)
        f0, t0 = frames_total(), time.monotonic()
        assert len(mjpeg_frames(s.port, 6)) == 6
        elapsed, classified = time.monotonic() - t0, frames_total() - f0
        assert elapsed >= 0.9  # 6 frames at most 5 a second: at least 5 gaps of 0.2 s
        assert classified >= 2 * 6  # the 25 fps video is classified at its own pace meanwhile
    finally:
        s.kill()
