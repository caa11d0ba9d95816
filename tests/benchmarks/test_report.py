"""report.md comes from the spine's one table and report writer, byte for byte what the reference
reports in reports/ hold; catdog-bench's options default to the configs' values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catdog.benchmarks.cli import app
from catdog.benchmarks.common.config import BenchConfig, ScaleConfig
from catdog.benchmarks.common.report import render_md

REPORTS = Path(__file__).resolve().parents[2] / "reports"


@pytest.mark.parametrize("name", ["cpu-reference", "scale-reference"])
def test_report_md_renders_byte_for_byte_as_the_reference(name):
    folder = REPORTS / name
    rendered = render_md(json.loads((folder / "report.json").read_text()))
    assert rendered == (folder / "report.md").read_text()
    assert "|---|---|" in rendered and "---:|" not in rendered  # left-aligned columns, as they always were


def test_the_options_default_to_the_configs():
    run_help = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output
    b = BenchConfig
    for shown in (f"Batch sizes. [default: {','.join(map(str, b.batches))}]",
                  f"before timing. [default: {b.loop.warmup}]", f"(default {b.loop.iters} unless --seconds)",
                  f"moves on. [default: {b.loop.block}]", f"(0 = all). [default: {b.accuracy_limit}]",
                  f"(0 = skip). [default: {b.coldstart_runs}]", "regardless). [default: tf32]"):
        assert shown in run_help, shown
    scale_help = CliRunner().invoke(app, ["scale", "--help"], env={"COLUMNS": "300"}).output
    assert f"(comma list). [default: {','.join(map(str, ScaleConfig.actors))}]" in scale_help
    assert f"Interleaved rounds; the report takes medians. [default: {ScaleConfig.rounds}]" in scale_help
