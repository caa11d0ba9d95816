"""Videos and live sources with real files written by OpenCV from real photos: frame-by-frame files,
per-stage summary, --save, --smooth, a "camera" simulated by a video file through LatestFrameReader
(keeps the newest frame, counts drops), a stream that drops and comes back (or not), broken videos."""

from __future__ import annotations

import json
import os
import re
import threading
import time

import cv2
import numpy as np
import pytest
from testkit.runtime import MjpegServer, run_cli, write_video

from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.live.capture import LatestFrameReader, open_capture
from catdog.runtime.live.sources import GST_PREFIX, Source, csi_pipeline, open_source
from catdog.runtime.live.window import HEADLESS, NO_DISPLAY, gui_problem
from catdog.runtime.spine.errors import InputError


def frames_of(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def test_video_file_max_frames_and_stage_summary(models, video_avi):
    r = run_cli(video_avi, "--model", models["float"], "--json", "--max-frames", "5")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["source"] for row in rows] == [f"{video_avi}#{i}" for i in range(5)]
    for stage in ("capture wait", "decode", "preprocess", "inference", "postprocess", "frame age"):
        assert re.search(rf"{stage}\s+(mean )?[\d.]+ ms", r.stderr), (stage, r.stderr)
    assert "--max-frames 5" in r.stderr and "5 ok, 0 failed" in r.stderr


def test_video_json_matches_the_api_frame_by_frame(models, video_avi):
    r = run_cli(video_avi, "--model", models["float"], "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    frames = frames_of(video_avi)
    assert len(rows) == len(frames) == 24  # every frame of a file, in order
    clf = Classifier.from_file(models["float"], provider="cpu")
    for row, img in zip(rows[:6], frames, strict=False):
        assert row["probs"] == pytest.approx(clf.predict(img).probs, abs=1e-6)


@pytest.fixture(scope="module")
def video_240(tmp_path_factory, photos):
    """Tall enough that the overlay's four lines (label, runner-up, FPS, stages: rows 0-70 at 240 px)
    end far above the bottom band, whatever the FPS text's width (it follows the machine's speed)."""
    return write_video(tmp_path_factory.mktemp("vid240") / "clip240.avi", photos, 8, size=(320, 240))


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_save_writes_a_playable_annotated_video(models, video_240, tmp_path, suffix):
    out = tmp_path / f"annotated{suffix}"
    r = run_cli(video_240, "--model", models["float"], "--save", out, "--topk", "2")
    assert r.returncode == 0, r.stderr
    saved = frames_of(out)
    original = frames_of(video_240)
    assert len(saved) == len(original) and saved[0].shape == original[0].shape
    # The overlay is drawn: the text band at the top differs from the source frame; the bottom band,
    # which no line reaches, differs by re-encoding only.
    top = np.abs(saved[3][:20].astype(int) - original[3][:20].astype(int)).mean()
    bottom = np.abs(saved[3][-60:].astype(int) - original[3][-60:].astype(int)).mean()
    assert top > 10 and top > 3 * bottom, (top, bottom)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial file left beside it


def test_smoothing_averages_the_last_n_frames(models, video_avi):
    raw = [json.loads(x)["probs"] for x in run_cli(video_avi, "--model", models["float"], "--json").stdout.splitlines()]
    r = run_cli(video_avi, "--model", models["float"], "--json", "--smooth", "3")
    smooth = [json.loads(x)["probs"] for x in r.stdout.splitlines()]
    for k in (0, 1, 5, 23):
        window = raw[max(0, k - 2) : k + 1]
        assert smooth[k]["dog"] == pytest.approx(np.mean([w["dog"] for w in window]), abs=1e-6)


def test_simulated_camera_keeps_only_the_latest_frame(tmp_path, photos):
    """A model four times slower than the camera gets the newest frames, never a queue: a frame
    waiting for it is dropped once it is older than one frame interval and a newer one exists."""
    video = write_video(tmp_path / "cam.avi", photos, 40)
    src = Source("video", str(video), target=str(video))
    reader = LatestFrameReader(lambda: open_capture(src), "cam", reconnect=False, pace_fps=200).start()
    got = []
    try:
        while True:
            captured_before = reader.captured
            frame = reader.get(timeout=5)
            if frame is None:
                break
            # never more than MAX_KEPT frames behind, and never older than one interval if a newer one exists
            assert frame.index >= captured_before - reader.max_kept
            assert frame.index == reader.captured - 1 or time.perf_counter() - frame.t_capture < 0.005 + 0.02
            got.append(frame.index)
            time.sleep(0.02)  # a model four times slower than the camera
    finally:
        reader.stop()
    assert reader.captured == 40 and reader.error is None
    assert got == sorted(set(got)) and 0 < len(got) < 40
    assert reader.dropped == 40 - len(got)  # every frame is either used or counted as dropped
    assert reader.thread is not None and not reader.thread.is_alive() and reader.cap is None


def test_stream_that_drops_is_reopened_or_reported(tmp_path, photos):
    video = write_video(tmp_path / "live.avi", photos, 12)
    data = video.read_bytes()
    src = Source("stream", str(video), target=str(video))
    logs: list[str] = []

    def consume(reader, restore_after: float | None) -> int:
        reader.start()
        n = 0
        video.unlink()  # the source goes away while the first capture is still open
        if restore_after is not None:
            threading.Timer(restore_after, video.write_bytes, args=(data,)).start()
        while reader.get(timeout=10) is not None:
            n += 1
            if reader.reconnects and reader.captured > 15:
                break  # back and delivering again (a file "stream" that is back would loop for ever)
        reader.stop()
        return n

    gone = LatestFrameReader(lambda: open_capture(src), "cam", max_reconnects=2, backoff=(0.05, 0.1),
                             pace_fps=300, log=logs.append)
    assert consume(gone, None) > 0
    assert gone.error and "stream dropped and did not come back after 2 reconnect attempts" in gone.error
    assert sum("reconnecting in" in m for m in logs) == 2

    video.write_bytes(data)
    logs.clear()
    back = LatestFrameReader(lambda: open_capture(src), "cam", max_reconnects=3, backoff=(0.2, 0.4),
                             pace_fps=300, log=logs.append)
    consume(back, restore_after=0.05)
    assert "cam: reconnected" in logs and back.reconnects >= 1 and back.captured > 12


def test_http_mjpeg_stream_that_drops_mid_run_reconnects_then_ends_cleanly(models, photos):
    """A real HTTP camera on loopback: it hangs up after 15 frames (the runtime reconnects with
    backoff and gets frames again), then loses power for good (reconnects are refused): the run
    ends by itself with the frames it got, the drop named in the output, a summary and exit 1."""
    import subprocess
    import sys

    with MjpegServer(photos, per_connection=[15, None]) as cam:
        p = subprocess.Popen([sys.executable, "-m", "catdog.runtime", cam.url, "--model", str(models["float"]),
                              "--json", "--reconnects", "2", "--max-frames", "100000", "--provider", "cpu"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (len(cam.served) < 2 or cam.served[1] < 10):
                assert p.poll() is None, p.communicate()
                time.sleep(0.05)
            cam.stop()  # mid-run: the second connection is delivering frames
            out, err = p.communicate(timeout=30)
        finally:
            p.kill()
    assert p.returncode == 1 and "Traceback" not in err, err
    assert cam.served[0] == 15 and cam.served[1] >= 10
    name = f"stream {cam.url}"
    assert f"{name}: stream dropped; reconnecting in 0.5 s (attempt 1/2)" in err
    assert f"{name}: reconnected" in err and "reconnecting in 1.0 s (attempt 2/2)" in err
    assert re.search(r"stopped by\s+end of input", err)
    assert f"error: {name}: stream dropped and did not come back after 2 reconnect attempts" in err
    rows = [json.loads(x) for x in out.splitlines()]
    assert sum("label" in r for r in rows) >= 10 and "did not come back" in rows[-1]["error"]


def test_camera_that_never_opens_is_one_clear_error(models):
    with pytest.raises(InputError, match="camera 57: cannot open it"):
        open_capture(open_source("57"))
    r = run_cli("57", "--model", models["float"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: camera 57: cannot open it")


def test_broken_videos(models, photos, tmp_path):
    avi = write_video(tmp_path / "ok.avi", photos, 24).read_bytes()
    (tmp_path / "short.avi").write_bytes(avi[: len(avi) // 2])  # ends early: header promises 24 frames
    r = run_cli(tmp_path / "short.avi", "--model", models["float"], "--json")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert 0 < sum("label" in x for x in rows) < 24
    assert re.search(r"short.avi: video ended after \d+ of 24 frames", rows[-1]["error"])

    mp4 = write_video(tmp_path / "ok.mp4", photos, 24, fourcc="mp4v").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])  # mp4 index (moov) is at the end: unreadable
    r = run_cli(tmp_path / "cut.mp4", "--model", models["float"])
    assert r.returncode == 2 and "cut.mp4: cannot open the video" in r.stderr and "Traceback" not in r.stderr


def test_realtime_plays_a_file_at_its_frame_rate(models, photos, tmp_path):
    video = write_video(tmp_path / "fast.avi", photos, 30, fps=60.0)
    t0 = time.perf_counter()
    r = run_cli(video, "--model", models["float"], "--json", "--realtime")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert 0 < len(rows) <= 30 and time.perf_counter() - t0 >= 0.5  # 30 frames at 60 fps


def test_show_without_a_window_is_a_clear_error(models, video_avi):
    """No display (the test removes it, as ssh or a service would): a headless OpenCV says it has no
    GUI, a GUI build says there is no display; either way one line before the run, not an abort."""
    headless = bool(re.search(r"GUI:\s*NONE", cv2.getBuildInformation()))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = run_cli(video_avi, "--model", models["float"], "--show", env=env)
    want = "--show needs an OpenCV build with GUI support" if headless else "--show needs a display"
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(f"error: {want}"), r.stderr
    # the decision itself, on this OpenCV's own build information
    build = cv2.getBuildInformation()
    assert gui_problem(build, {}, "linux") == (HEADLESS if headless else NO_DISPLAY)
    assert gui_problem(build, {"WAYLAND_DISPLAY": "wayland-0"}, "linux") == (HEADLESS if headless else None)
    assert gui_problem(build, {}, "darwin") == (HEADLESS if headless else None)


def test_source_kinds_and_csi_pipeline(tmp_path, video_avi):
    assert open_source("0").kind == "camera" and open_source("0").target == 0
    assert open_source("/dev/video3").backend == "v4l2"
    assert open_source("rtsp://10.0.0.2:554/live").kind == "stream"
    assert open_source(str(video_avi)).kind == "video"
    pipe = csi_pipeline(1, 640, 480, 15)
    assert pipe.startswith("nvarguscamerasrc sensor-id=1 !") and "width=640, height=480, framerate=15/1" in pipe
    assert "appsink" in pipe and open_source(GST_PREFIX + pipe).kind == "pipeline"
    with pytest.raises(InputError, match="needs the prefix: 'gst:nvarguscamerasrc"):
        open_source(pipe)  # a pipeline only by the explicit prefix: "!" may be part of a file name
    # A pipeline this machine cannot run (an element no GStreamer has): an OpenCV without GStreamer
    # says so; one with it (JetPack's, a distro's) says the pipeline does not open.
    has_gst = bool(re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()))
    want = "cannot connect (check the URL or pipeline" if has_gst else "no GStreamer support"
    with pytest.raises(InputError, match=re.escape(want)):
        open_capture(open_source(GST_PREFIX + "catdognosuchsrc ! videoconvert ! appsink"))


def _read_until(stream, marker: str, timeout_s: float) -> str:
    """Reads lines from a child's pipe until one starts with `marker`; returns what was read."""
    got: list[str] = []
    seen = threading.Event()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            got.append(line)
            if line.startswith(marker):
                seen.set()
                return
        seen.set()  # EOF: the child ended; the caller's assertions will say why

    threading.Thread(target=pump, daemon=True).start()
    assert seen.wait(timeout_s), f"no line starting with {marker!r} after {timeout_s} s: {''.join(got)}"
    return "".join(got)


def test_ctrl_c_stops_cleanly_with_summary_and_saved_video(models, photos, tmp_path):
    import signal
    import subprocess
    import sys

    from testkit.procs import interruptible

    video = write_video(tmp_path / "long.avi", photos, 300, fps=30.0)  # 10 s played in real time
    out = tmp_path / "partial.avi"
    p = interruptible([sys.executable, "-m", "catdog.runtime", video, "--model", models["float"],
                       "--realtime", "--save", out, "--provider", "cpu"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Interrupt only once frames are flowing: the first status line says so. A fixed sleep was
        # flaky on a loaded CI machine (imports alone can take seconds there).
        first = _read_until(p.stderr, "frame ", timeout_s=120.0)
        p.send_signal(signal.SIGINT)
        _, rest = p.communicate(timeout=30)
        err = first + rest
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and re.search(r"stopped by\s+Ctrl-C", err), err
    saved = frames_of(out)
    assert 0 < len(saved) < 300  # what was shown so far is kept, as a finished, playable file
    assert sorted(x.name for x in tmp_path.iterdir()) == ["long.avi", "partial.avi"]


def test_a_video_whose_name_is_not_utf8_is_classified(models, video_avi, tmp_path):
    """OpenCV takes a path as UTF-8 text and crashed (SIGSEGV, exit -11) on a Linux file name whose
    bytes are not UTF-8; the run opens it through a link in a private temp folder it removes."""
    odd = tmp_path / os.fsdecode(b"\xffclip.avi")
    odd.write_bytes(video_avi.read_bytes())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = run_cli(odd, "--model", models["float"], "--json", "--max-frames", "3", env={**os.environ, "TMPDIR": str(tmp)})
    assert r.returncode == 0, (r.returncode, r.stderr)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 3 and all(row["label"] for row in rows), rows
    assert odd.read_bytes() == video_avi.read_bytes()  # the input is untouched
    assert not list(tmp.glob("catdog-video-*"))  # the link's folder went with the process
