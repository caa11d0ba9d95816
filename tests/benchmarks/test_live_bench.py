"""catdog-bench live on a tiny budget: a real RTSP camera (Debian's python3 with GStreamer's RTSP
server), a real catdog-runtime process reading it through this venv's FFmpeg OpenCV, real decode
timings through both backends' OpenCV. The report's figures must agree with each other; no timing
is asserted. The GStreamer live cell is run by the real benchmark from a Jetson-recipe venv: here
Debian's bare python3 stands in for a venv without the runtime, which must be reported unavailable
(one line, what to install) while its OpenCV still times the decoding."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from catdog.benchmarks.cli import app
from catdog.benchmarks.live.measure import LiveBenchConfig
from catdog.benchmarks.live.run import run_live_bench

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: python3-gi, the RTSP server, python3-opencv (scripts/test.sh)


def test_a_short_live_benchmark_writes_a_consistent_report(tmp_path, labeled_dir):
    cfg = LiveBenchConfig(labeled_dir, tmp_path / "live", {"ffmpeg": sys.executable, "gstreamer": SYSTEM_PYTHON},
                          camera_python=SYSTEM_PYTHON, fps=(15,), seconds=2.0, warmup_s=1.0, size=(160, 120),
                          frames_per_image=5, decode_frames=30, decode_repeats=2, command="test")
    lines: list[str] = []
    data = run_live_bench(cfg, log=lines.append)
    rep = json.loads((tmp_path / "live" / "report.json").read_text())
    assert rep["cells"] == json.loads(json.dumps(data["cells"]))

    gst = next(b for b in rep["backends"] if b["backend"] == "gstreamer")
    assert gst["unavailable"] and "onnxruntime" in gst["unavailable"] and "--gst-python" in gst["unavailable"]
    assert any(line.startswith("unavailable: gstreamer") for line in lines)
    assert [(c["backend"], c["fps"]) for c in rep["cells"]] == [("ffmpeg", 15)]  # never a faked GStreamer cell

    c = rep["cells"][0]
    assert "error" not in c and "ended_early" not in c, c
    assert 0 < c["classified"] <= c["read"] <= c["sent"] and c["errors"] == 0
    assert c["dropped"] >= c["dropped_before_window"] >= 0 and c["not_read"] == c["sent"] - c["read"]
    w = c["window"]
    assert 0 < w["classified"] <= w["camera_frames"] and w["dropped"] == w["camera_frames"] - w["classified"]
    assert w["classified_per_s"] <= w["camera_fps"] and w["seconds"] > 0
    assert c["classified_of_sent"] == c["classified"] / c["sent"]
    assert 0 <= c["lag_ms"]["p50"] <= c["lag_ms"]["p99"] <= c["lag_ms"]["max"]
    if c["age_ms"]["n"]:  # a runtime with --timings: one age per label of the window, and its stage times
        assert c["age_ms"]["n"] == w["classified"] and 0 < c["age_ms"]["p50"] <= c["age_ms"]["p99"]
        t = c["timings_ms"]
        assert {"inference_ms", "age_ms"} <= set(t) and all(v["p50"] <= v["p99"] for v in t.values())
        for q in ("p50", "p99"):  # each label's age includes its own inference, so every quantile does
            assert t["inference_ms"][q] <= t["age_ms"][q] == c["age_ms"][q]
    u = c["usage"]
    assert u["runtime"]["rss_mb_max"] >= u["runtime"]["rss_mb_median"] > 10 and u["runtime"]["cpu_percent"] > 0
    assert u["others_cpu_percent"] >= 0 and u["camera"]["cpu_percent"] > 0 and c["stage_ms"]["inference"] > 0

    dec = {d["backend"]: d for d in rep["decode"]}
    assert set(dec) == {"ffmpeg", "gstreamer"}  # decoding alone needs only each backend's OpenCV
    for d in dec.values():
        assert d["frames"] == 30 and d["shape"] == [120, 160, 3] and len(d["runs_ms_per_frame"]) == 2
        assert min(d["runs_ms_per_frame"]) <= d["ms_per_frame"] <= max(d["runs_ms_per_frame"])
    assert dec["gstreamer"]["opencv_path"].startswith("/usr/lib/python3")

    md = (tmp_path / "live" / "report.md").read_text()
    for heading in ("## Backends", "## Live: frames classified", "## Frame age, CPU and memory", "## Decoding alone"):
        assert heading in md
    assert f"ONNX Runtime's integer path: {rep['cpu']['int8_path']}" in md and "ISA:" in md
    assert gst["unavailable"] in md


def test_live_refuses_bad_options_in_one_line(tmp_path, labeled_dir):
    runner = CliRunner()
    for args, words in ((["--backends", "vlc"], "--backends takes ffmpeg and/or gstreamer"),
                        (["--size", "big"], "--size wants WIDTHxHEIGHT"),
                        (["--camera-python", str(tmp_path / "nope")], "the RTSP camera needs")):
        res = runner.invoke(app, ["live", str(labeled_dir), "--out", str(tmp_path), *args])
        assert res.exit_code != 0 and words in res.output and "Traceback" not in res.output, res.output
    shown = runner.invoke(app, ["live", "--help"], env={"COLUMNS": "300"}).output  # defaults: the config's
    for default in (",".join(map(str, LiveBenchConfig.fps)), LiveBenchConfig.seconds, LiveBenchConfig.warmup_s):
        assert f"[default: {default}]" in shown
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["live", str(empty), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "no photos" in res.output
    assert not Path(tmp_path / "live").exists()


def test_a_runtime_that_cannot_read_the_camera_is_one_line_not_figures(tmp_path, labeled_dir):
    """The pip OpenCV has no GStreamer: a gst: pipeline in this venv's runtime exits at once, and the
    cell says so with the runtime's own reason instead of any figure."""
    from catdog.benchmarks.live.run import measure_cell

    cfg = LiveBenchConfig(labeled_dir, tmp_path, {"gstreamer": sys.executable}, camera_python=SYSTEM_PYTHON,
                          size=(160, 120), seconds=1.0, warmup_s=0.0)
    cell = measure_cell(cfg, "gstreamer", 15, sorted(labeled_dir.iterdir())[:2], False, log=lambda m: None)
    assert set(cell) == {"backend", "fps", "error", "sent", "runtime_exit"}, cell
    assert cell["error"].startswith("the runtime exited (code ") and "GStreamer" in cell["error"], cell
