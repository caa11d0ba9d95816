"""The camera stack end to end, with real parts from Debian: GStreamer's RTSP server serving H.264
made from labelled photos on loopback (tests/testkit/camera.py), read by the real `catdog-runtime`
console script through pip OpenCV's FFmpeg (`rtsp://`) and through GStreamer (`gst:` pipelines) in
docs/jetson.md's Jetson-recipe venv (Debian's python3 and python3-opencv, `pip install .`, onnxruntime).
A missing Debian package fails with the apt-get command that installs it; nothing here skips."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from testkit.camera import (
    SYSTEM_PYTHON,
    BurstyMjpegCamera,
    RtspCamera,
    SilentServer,
    build_jetson_venv,
    build_slow_model,
    free_port,
    read_lines_until,
    require_camera_stack,
    runtime_cmd,
    wait_for,
)
from testkit.runtime import write_video

from catdog.runtime.live.capture import MAX_KEPT, LatestFrameReader, open_capture
from catdog.runtime.live.loop import TIMING_KEYS
from catdog.runtime.live.sources import csi_pipeline, open_source

CLIP = ("cat.168.jpg", "dog.169.jpg")  # the shipped model labels both correctly, also squeezed to 320x240
RTSPSRC = ("rtspsrc location={url} latency=0 protocols=tcp ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert "
           "! video/x-raw,format=BGR ! appsink drop=true max-buffers=1")


@pytest.fixture(scope="module")
def clip(data_dir) -> list[Path]:
    require_camera_stack()
    return [data_dir / p for p in CLIP]


@pytest.fixture(scope="session")
def jetson_bin(tmp_path_factory) -> Path:
    """The Jetson-recipe venv, built once per session (pip's cache makes later sessions fast)."""
    return build_jetson_venv(tmp_path_factory.mktemp("jetson-venv"))


def run_rt(*args, bin_dir: Path | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*runtime_cmd(bin_dir), *map(str, args), "--provider", "cpu"], capture_output=True,
                          text=True, timeout=timeout)


def rows_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def index_of(row: dict) -> int:
    return int(row["source"].rsplit("#", 1)[1])


def assert_parts_labelled(rows: list[dict], per_image: int, classes=("cat", "dog")) -> None:
    """Frame i of a clip shows photo (i // per_image) % 2; frames next to a switch are not judged
    (a decoder may be a frame early or late there)."""
    judged = 0
    for row in rows:
        i = index_of(row)
        if min(i % per_image, per_image - i % per_image) < 2:
            continue
        assert row["label"] == classes[(i // per_image) % 2], (i, row, [(index_of(r), r["label"]) for r in rows])
        judged += 1
    assert judged >= len(rows) // 2, (judged, len(rows))


def summary_int(stderr: str, pattern: str) -> int:
    m = re.search(pattern, stderr)
    assert m, (pattern, stderr)
    return int(m.group(1))


def test_rtsp_through_ffmpeg_labels_each_part_and_classifies_every_frame(clip):
    """pip OpenCV (FFmpeg) reads the RTSP camera: every part of the clip gets its photo's label,
    the stage times say what they measure, and with inference faster than the camera every frame
    after FFmpeg's start-up burst is classified (none dropped)."""
    with RtspCamera(clip, fps=15, per_image=15) as cam:
        r = run_rt(cam.url, "--json", "--timings", "--max-frames", "60")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = rows_of(r.stdout)
    assert len(rows) == 60 and all("label" in x for x in rows), r.stdout[-2000:]
    assert_parts_labelled(rows, 15)
    for x in rows:
        assert set(x["timings"]) == set(TIMING_KEYS) and all(v >= 0 for v in x["timings"].values()), x
    # every frame once the stream runs at its own pace: consecutive indices, none dropped
    late = [index_of(x) for x in rows[-25:]]
    assert late == list(range(late[0], late[0] + 25)), late
    # the capture wait is waiting for the camera (15 fps: ~66 ms a frame), decode is CPU and small
    assert re.search(r"capture wait\s+[\d.]+ ms/item \(waiting for the camera's next frame\)", r.stderr), r.stderr
    waits = sorted(x["timings"]["wait_ms"] for x in rows[-25:])
    decodes = sorted(x["timings"]["decode_ms"] for x in rows[-25:])
    assert waits[12] > 20 and decodes[12] < waits[12], (waits, decodes)
    assert re.search(r"frame age\s+mean [\d.]+ ms, p50 [\d.]+ ms, p99 [\d.]+ ms", r.stderr), r.stderr
    captured = summary_int(r.stderr, r"frames\s+(\d+) captured, 60 classified")
    dropped = summary_int(r.stderr, r"60 classified, (\d+) dropped")
    assert 0 <= captured - 60 - dropped <= 3, r.stderr  # each frame classified, dropped or still waiting


def test_jetson_recipe_venv_uses_the_system_opencv_and_reads_rtsp_through_gstreamer(clip, jetson_bin):
    py = str(jetson_bin / "python")
    where = subprocess.run([py, "-c", "import cv2; print(cv2.__file__)"], capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith("/usr/lib/python3/dist-packages/"), (where.stdout, where.stderr)
    pips = subprocess.run([py, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, timeout=60)
    assert not re.search(r"(?im)^opencv", pips.stdout), pips.stdout  # no pip OpenCV shadowing it
    doctor = subprocess.run([str(jetson_bin / "catdog-bench"), "doctor"], capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 0, doctor.stderr
    assert re.search(r"OpenCV 4[\d.]*: GStreamer yes", doctor.stdout + doctor.stderr), doctor.stdout
    with RtspCamera(clip, fps=15, per_image=15) as cam:
        r = run_rt("gst:" + RTSPSRC.format(url=cam.url), "--json", "--timings", "--max-frames", "45",
                   bin_dir=jetson_bin)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = rows_of(r.stdout)
    assert len(rows) == 45 and all("label" in x for x in rows), r.stdout[-2000:]
    assert re.search(r"45 ok, 0 failed", r.stderr), r.stderr
    assert_parts_labelled(rows, 15)
    assert "stream dropped" not in r.stderr and "reconnect" not in r.stderr, r.stderr


def test_gst_videotestsrc_and_a_filesrc_decodebin_pipeline(photos, jetson_bin, tmp_path):
    r = run_rt("gst:videotestsrc ! video/x-raw,width=320,height=240,framerate=30/1", "--json", "--timings",
               "--max-frames", "8", bin_dir=jetson_bin)
    assert r.returncode == 0, r.stderr
    rows = rows_of(r.stdout)
    assert len(rows) == 8 and all(x["label"] in ("cat", "dog") and "timings" in x for x in rows), r.stdout
    cat, dog = [p for p in photos if p.name.startswith("cat")][0], [p for p in photos if p.name.startswith("dog")][0]
    video = write_video(tmp_path / "clip.avi", [cat] * 10 + [dog] * 10, 20, fps=10.0, size=(320, 240))
    # sync=true: the file plays at its own rate, like a camera; frame i shows photo i // 10
    pipe = f"gst:filesrc location={video} ! decodebin ! videoconvert ! video/x-raw,format=BGR ! appsink sync=true"
    r = run_rt(pipe, "--json", "--max-frames", "16", bin_dir=jetson_bin)
    assert r.returncode == 0, r.stderr
    rows = rows_of(r.stdout)
    idx = [index_of(x) for x in rows]
    assert len(rows) == 16 and idx == sorted(set(idx)) and idx[0] <= 2, r.stdout  # newest first, in order
    assert_parts_labelled(rows, 10)


def test_gst_pipelines_that_cannot_play_say_gstreamers_reason_in_one_line(jetson_bin):
    t0 = time.monotonic()
    r = run_rt("--csi", "0", bin_dir=jetson_bin, timeout=60)  # nothing here has nvarguscamerasrc
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        'error: GStreamer pipeline: GStreamer cannot build it: no element "nvarguscamerasrc"'), r.stderr
    refused = RTSPSRC.format(url=f"rtsp://127.0.0.1:{free_port()}/cam")
    r = run_rt("gst:" + refused, bin_dir=jetson_bin, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: GStreamer pipeline: GStreamer cannot play it: rtspsrc: Could not open resource"), (
        last)
    assert sum(ln.startswith("error:") for ln in r.stderr.splitlines()) == 1 and "WARN" not in r.stderr, r.stderr
    assert time.monotonic() - t0 < 40
    # Without python3-gi (optional) nothing checks the pipeline first, and OpenCV waits for ever on a
    # missing source element: the open's time limit (here 3 s instead of 30) still ends it in one line.
    code = ("import sys, time; sys.modules['gi'] = None\n"
            "import catdog.runtime.live.gst as g; g.GST_START_TIMEOUT_S = 3.0\n"
            "from catdog.runtime.live.capture import open_capture\n"
            "from catdog.runtime.live.sources import open_source\n"
            "t = time.monotonic()\n"
            "try:\n    open_capture(open_source('gst:catdognosuchsrc ! videoconvert ! appsink'))\n"
            "except Exception as e:\n    print(f'{time.monotonic() - t:.1f}', type(e).__name__, e)\n")
    r = subprocess.run([str(jetson_bin / "python"), "-c", code], capture_output=True, text=True, timeout=60)
    took, kind, message = r.stdout.split(" ", 2)
    assert kind == "InputError" and 2.9 < float(took) < 10, r.stdout + r.stderr
    assert message.startswith("GStreamer pipeline: GStreamer did not start it within 3 s"), message


def test_csi_pipeline_parses_and_plays_in_gstreamer_with_stand_ins():
    """nvarguscamerasrc, nvvidconv and NVMM exist only on a Jetson: swapped for videotestsrc,
    videoflip + videoconvert and plain caps, the rest of csi_pipeline() is parsed and played by
    GStreamer itself, so a syntax error or caps that cannot negotiate fails here."""
    require_camera_stack()
    pipe = csi_pipeline(0, 320, 240, 30, flip=2)
    swapped = re.sub(r"nvarguscamerasrc sensor-id=\d+", "videotestsrc num-buffers=5", pipe)
    swapped = re.sub(r"nvvidconv flip-method=(\d+)", r"videoflip method=\1 ! videoconvert", swapped)
    swapped = swapped.replace("(memory:NVMM)", "")
    assert "nv" not in swapped.replace("videoconvert", ""), swapped
    code = ("import sys, gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None)\n"
            "p = Gst.parse_launch_full(sys.argv[1], None, Gst.ParseFlags.FATAL_ERRORS)\n"
            "sink = p.iterate_sinks().next()[1]\n"
            "assert sink.get_factory().get_name() == 'appsink', sink\n"
            "p.set_state(Gst.State.PLAYING)\n"
            "sample = sink.emit('try-pull-sample', 10 * Gst.SECOND)\n"
            "m = p.get_bus().pop_filtered(Gst.MessageType.ERROR)\n"
            "assert m is None, m.parse_error()[0].message\n"
            "caps = sample.get_caps().get_structure(0)\n"
            "print(caps.get_value('format'), caps.get_value('width'), caps.get_value('height'))\n"
            "p.set_state(Gst.State.NULL)\n")
    r = subprocess.run([SYSTEM_PYTHON, "-c", code, swapped], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (swapped, r.stderr)
    assert r.stdout.split() == ["BGR", "320", "240"], r.stdout
    broken = swapped.replace("! videoconvert !", "! ! videoconvert", 1)
    r = subprocess.run([SYSTEM_PYTHON, "-c", code, broken], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "syntax error" in r.stderr.lower(), r.stderr  # the check can fail


class Run:
    """A `catdog-runtime` child whose stdout (JSON lines) and stderr are read as they come."""

    def __init__(self, args: list[str], bin_dir: Path | None = None):
        self.p = subprocess.Popen([*runtime_cmd(bin_dir), *args, "--provider", "cpu"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.done = threading.Event()
        read_lines_until(self.p.stdout, self.done, self.out)
        read_lines_until(self.p.stderr, threading.Event(), self.err)

    def rows(self) -> list[dict]:
        return [json.loads(x) for x in list(self.out)]

    def finish(self, timeout: float) -> int:
        try:
            return self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
            time.sleep(0.2)  # the pumps read the last lines


@pytest.mark.parametrize("backend", ["ffmpeg", "gstreamer"])
def test_rtsp_server_restart_mid_run_reconnects_and_keeps_every_output_valid(clip, backend, tmp_path, request):
    bin_dir = request.getfixturevalue("jetson_bin") if backend == "gstreamer" else None
    cam = RtspCamera(clip, fps=15, per_image=15).start()
    source = cam.url if backend == "ffmpeg" else "gst:" + RTSPSRC.format(url=cam.url)
    out_csv = tmp_path / "out.csv"
    run = Run([source, "--json", "--timings", "--csv", str(out_csv), "--reconnects", "6"], bin_dir)
    try:
        wait_for(lambda: len(run.out) >= 10, 30, "10 frames before the restart")
        cam.stop()
        before = len(run.out)
        time.sleep(1.0)  # the camera is gone: the run retries (refused) with backoff
        assert not any("reconnected" in x for x in run.err), run.err
        cam.start()
        wait_for(lambda: len(run.out) >= before + 25, 40, "frames after the restart")
        run.p.send_signal(signal.SIGINT)
        rc = run.finish(30)
    finally:
        cam.stop()
        if run.p.poll() is None:
            run.p.kill()
    err = "".join(run.err)
    assert rc == 130 and "Traceback" not in err, err
    rows = run.rows()  # every line is valid JSON
    assert all("label" in x and set(x["timings"]) == set(TIMING_KEYS) for x in rows), rows[-3:]
    after = [x["label"] for x in rows[before:]]
    assert len(after) >= 25 and {"cat", "dog"} <= set(after), after  # the new stream's photos, both
    assert err.count("reconnected") == 1 and "stream dropped; reconnecting in 0.5 s (attempt 1/6)" in err, err
    # "reconnected" is said after the stream delivered again: not while the camera was down
    assert err.index("stream dropped") < err.index("reconnected"), err
    with open(out_csv, newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["source"] for t in table] == [x["source"] for x in rows]
    assert all(t["label"] in ("cat", "dog") for t in table)


def test_rtsp_server_that_never_comes_back_ends_the_run_with_one_line(clip):
    cam = RtspCamera(clip, fps=15, per_image=15).start()
    run = Run([cam.url, "--json", "--reconnects", "2"])
    try:
        wait_for(lambda: len(run.out) >= 5, 30, "5 frames")
        cam.stop()
        t0 = time.monotonic()
        rc = run.finish(30)
    finally:
        cam.stop()
    err = "".join(run.err)
    assert rc == 1 and time.monotonic() - t0 < 15 and "Traceback" not in err, err
    errors = [ln for ln in run.err if ln.startswith("error:")]
    assert len(errors) == 1 and "did not come back after 2 reconnect attempts" in errors[0], err
    assert "reconnected" not in err, err
    assert "did not come back" in run.rows()[-1]["error"]


def test_a_server_that_accepts_and_never_sends_fails_in_bounded_time(jetson_bin):
    with SilentServer() as silent:
        url = f"rtsp://127.0.0.1:{silent.port}/cam"
        t0 = time.monotonic()
        r = run_rt(url, "--json", timeout=60)  # FFmpeg: gives up after its open timeout (10 s)
        took = time.monotonic() - t0
        assert r.returncode == 2 and took < 25 and "Traceback" not in r.stderr, (took, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: stream {url}: cannot connect within 10 s"), r.stderr
        # GStreamer: rtspsrc's own TCP timeout (here 2 s), and GStreamer's reason in the one line
        t0 = time.monotonic()
        r = run_rt("gst:" + RTSPSRC.format(url=url).replace("latency=0", "latency=0 tcp-timeout=2000000"),
                   bin_dir=jetson_bin, timeout=60)
        took = time.monotonic() - t0
    assert r.returncode == 2 and took < 20 and "Traceback" not in r.stderr, (took, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: GStreamer pipeline: GStreamer cannot play it: rtspsrc: Could not read"), r.stderr


def test_newest_frame_never_a_queue_when_inference_is_slower_than_the_camera(clip, tmp_path):
    """A 30 fps camera and a model that takes several frame intervals per frame: frame age (arrival
    to label) stays bounded instead of growing, and the frames it could not take are counted."""
    slow = build_slow_model(tmp_path / "slow.onnx", repeats=6)
    with RtspCamera(clip, fps=30, per_image=30) as cam:
        r = run_rt(cam.url, "--model", slow, "--threads", "1", "--json", "--timings", "--max-frames", "30")
    assert r.returncode == 0, r.stderr
    rows = rows_of(r.stdout)
    assert len(rows) == 30
    t = [x["timings"] for x in rows]
    inference = sorted(x["inference_ms"] for x in t)
    assert inference[15] > 50, inference  # slower than the camera's 33 ms
    ages = [x["age_ms"] for x in t]
    # never more than a frame interval old when taken, plus its own inference and MAX_KEPT's worth
    assert max(ages[5:]) < 33 + 2.5 * inference[-1] + 50, (ages, inference)
    assert max(ages[-10:]) < 2 * max(ages[5:15]) + 50, ages  # not growing: no queue
    dropped = summary_int(r.stderr, r"30 classified, (\d+) dropped")
    captured = summary_int(r.stderr, r"frames\s+(\d+) captured")
    assert dropped > 30 and captured - 30 - dropped <= 3, r.stderr  # each frame classified, dropped or still waiting
    assert [index_of(x) for x in rows] == sorted({index_of(x) for x in rows})


@pytest.mark.parametrize("max_kept", [1, MAX_KEPT])
def test_frames_that_arrive_in_bursts_are_all_classified_when_inference_keeps_up(photos, max_kept):
    """A camera that sends 3 frames back to back, 15 a second on average, and a consumer that takes
    15 ms a frame (faster than the camera): the reader keeps the frames of a burst (each younger
    than one frame interval), so every frame is classified once the stream runs; the single-slot
    reader it replaced (max_kept=1) dropped the middle frame of every burst."""
    with BurstyMjpegCamera(photos[:2], fps=15, burst=3) as cam:
        source = open_source(cam.url)
        reader = LatestFrameReader(lambda: open_capture(source), "burst", max_kept=max_kept).start()
        got = []
        try:
            while len(got) < 60:
                frame = reader.get(timeout=10)
                assert frame is not None, reader.error
                got.append(frame.index)
                time.sleep(0.015)  # the classifier's work on the frame
        finally:
            reader.stop()
    late = [i for i in got if i >= got[0] + 15]  # once FFmpeg's start-up frames are behind
    missed = (late[-1] - late[0] + 1) - len(late)
    if max_kept == 1:
        assert missed >= len(late) // 4, (missed, got)  # about one frame in three
    else:
        assert missed == 0 and reader.dropped <= 15, (missed, reader.dropped, got)


def test_serve_shows_the_live_stage_times_and_frame_age_in_metrics_and_latest(clip):
    from testkit.serve import ServerProc

    with RtspCamera(clip, fps=15, per_image=15) as cam:
        s = ServerProc(cam.url)
        try:
            wait_for(lambda: s.metric("catdog_frame_age_seconds_count") >= 10, 30, "10 frames in /metrics")
            status, latest = s.json("GET", "/api/latest")
            assert status == 200
            assert set(latest["stage_ms"]) == {"capture wait", "decode", "preprocess", "inference", "frame age"}
            assert latest["stage_ms"]["frame age"] >= latest["stage_ms"]["inference"] > 0, latest["stage_ms"]
            assert s.metric('catdog_stage_seconds_count{stage="capture wait"}') >= 10
            assert s.metric('catdog_stage_seconds_count{stage="decode"}') >= 10
            page = s.request("GET", "/")[2].decode()
            assert "capture wait = for the next camera frame" in page
        finally:
            s.kill()
