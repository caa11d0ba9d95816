"""catdog-bench scale's arithmetic and report form (the Ray runs themselves are tests/runtime/scale/test_scale.py's;
the benchmark's figures come from a real run, recorded in the README)."""

from __future__ import annotations

import pytest

from catdog.benchmarks.common.report import render_md, summary_lines
from catdog.benchmarks.common.schema import Report, RunSettings, Section
from catdog.benchmarks.scale import SINGLE, SINGLE_T1, Measured, _rows
from catdog.runtime.scale.driver import Plan


def _m(steady: float, startup: float = 1.0) -> Measured:
    return Measured(startup, 2.0, steady, steady / 2, 4000)


def test_rows_compare_with_the_single_process_and_one_actor():
    one, two = "--ray, 1 actor", "--ray, 2 actors"
    results = {SINGLE: [_m(200), _m(100), _m(180)], SINGLE_T1: [_m(150)], one: [_m(120), _m(140)],
               two: [_m(210), _m(250)]}
    plans = {one: Plan(1, 1, 2, 1.0, 0.0, 256), two: Plan(2, 1, 2, 0.75, 0.0, 256)}
    rows = {r.pipeline: r for r in _rows(results, plans)}
    assert rows[SINGLE].steady_ips == 180 and rows[SINGLE].vs_single == 1 and rows[SINGLE].actors is None
    assert rows[SINGLE_T1].threads == 1 and rows[SINGLE_T1].efficiency is None
    assert rows[one].vs_single == pytest.approx(130 / 180) and rows[one].efficiency == 1
    assert rows[two].steady_ips == 230 and rows[two].efficiency == pytest.approx(230 / 260)
    assert rows[two].rounds == 2 and rows[two].images == 4000


def test_a_scale_report_has_no_empty_latency_table():
    rows = _rows({SINGLE: [_m(100)]}, {})
    settings = RunSettings(("cpu",), (16,), (None,), 0, 1, None, 1, "4000 inputs", {})
    rep = Report("s", "now", "catdog-bench scale x", {"cpu": "c", "arch": "x86_64", "cores_logical": 2,
                                                      "cores_physical": 2, "cores_usable": 2, "isa": {"avx2": True},
                                                      "ram_gb": 1, "os": "o", "python": "3", "numpy": "2",
                                                      "opencv": None, "onnxruntime": None, "torch": None,
                                                      "gpu": None, "jetson": None},
                 settings, [], [], [], (1.0, 1.0), [], sections={"scale": Section("about", tuple(rows))}).to_dict()
    md = render_md(rep)
    assert "## Scale out on Ray" in md and "## Latency" not in md and "ISA: avx2" in md
    assert summary_lines(rep)[0].startswith("scale: pipeline=catdog-runtime, one process")
