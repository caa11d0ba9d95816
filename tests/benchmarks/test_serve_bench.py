"""catdog-bench serve on a tiny budget: a real server process, real POSTs and MJPEG viewers on
loopback; the report holds every table and the issue's targets checked against its own numbers;
and a short fault soak (issue 32): timeouts, uploads cut short, viewers that never read and
half-open sockets at once, after which the server still answers every normal request."""

from __future__ import annotations

import json

from catdog.benchmarks.serve.faults import FaultMix
from catdog.benchmarks.serve.load import ServeBenchConfig
from catdog.benchmarks.serve.run import fault_verdicts, render_faults, run_faults, run_serve_bench
from catdog.runtime.spine.folders import list_images


def test_a_short_serve_benchmark_writes_its_report(tmp_path, data_dir):
    cfg = ServeBenchConfig(data_dir, tmp_path / "serve", clients=(1, 4), requests=8, viewers=(0, 2),
                           window_s=1.0, rounds=1, soak_s=2.0, soak_clients=2, video_frames=1500,
                           video_size=(160, 120), faults=FaultMix(seconds=0), command="test")
    data = run_serve_bench(cfg, log=lambda m: None)
    rep = json.loads((tmp_path / "serve" / "report.json").read_text())
    assert [x["clients"] for x in rep["load"]] == [1, 4] and all(x["errors"] == 0 for x in rep["load"])
    assert all(x["requests"] == 8 and x["p50_ms"] <= x["p99_ms"] for x in rep["load"])
    assert [x["viewers"] for x in rep["streams"]] == [0, 2] and rep["streams"][0]["inference_fps"] > 0
    assert rep["streams"][1]["stream_fps_per_viewer"] > 0 and rep["soak"]["errors"] == 0
    md = (tmp_path / "serve" / "report.md").read_text()
    for heading in ("## POST /api/predict", "## MJPEG viewers vs inference", "## Soak", "## Targets"):
        assert heading in md
    assert {t["target"] for t in data["targets"]} >= {"soak RSS growth <= 10%"}
    assert "integer path" in md


def test_a_short_fault_soak_keeps_the_server_honest(tmp_path, data_dir):
    """The acceptance soak's mix, bounded: 8 s at 4 clients (1 request in 10 asks for an answer
    sooner than any batch, 1 in 10 hangs up mid-body), 2 viewers that never read, 30 half-open
    sockets; then 20 normal requests, /healthz, and a new viewer."""
    cfg = ServeBenchConfig(data_dir, tmp_path / "serve", video_size=(320, 240), command="test")
    cfg.out_dir.mkdir(parents=True)
    mix = FaultMix(seconds=8.0, clients=4, idle_viewers=2, half_open=30, after=20, idle_timeout=1.0, video_fps=15.0)
    paths = list_images(data_dir)
    f = run_faults(cfg, mix, paths, [p.read_bytes() for p in paths], [], log=lambda m: None)
    assert all(met for _, _, met in fault_verdicts(f)), fault_verdicts(f)
    assert f["timed_out"] > 0 and f["aborted"] > 0 and f["ok"] > 0
    assert 0.05 < f["timed_out_share"] < 0.2 and 0.05 < f["aborted_share"] < 0.2, f
    errors = f["server_errors"]
    assert errors.get("timeout") == f["timed_out"] + f["slow"] and errors.get("aborted") == f["aborted"], (errors, f)
    assert errors.get("stalled_viewer", 0) >= 1 and f["half_open_closed"] > 0, (errors, f)
    assert f["health_checks"] >= 8 and f["health_not_200"] == 0
    assert "## Fault soak" in "\n".join(render_faults(f))
