"""catdog-bench serve on a tiny budget: a real server process, real POSTs and MJPEG viewers on
loopback; the report holds every table and the issue's targets checked against its own numbers."""

from __future__ import annotations

import json

from catdog.benchmarks.serve import ServeBenchConfig
from catdog.benchmarks.serve_run import run_serve_bench


def test_a_short_serve_benchmark_writes_its_report(tmp_path, data_dir):
    cfg = ServeBenchConfig(data_dir, tmp_path / "serve", clients=(1, 4), requests=8, viewers=(0, 2),
                           window_s=1.0, rounds=1, soak_s=2.0, soak_clients=2, video_frames=1500,
                           video_size=(160, 120), command="test")
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
