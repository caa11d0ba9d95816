"""catdog-bench run in a tiny configuration: the report's schema and the consistency of its numbers."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.benchmarks import tiny_macs
from typer.testing import CliRunner

from catdog.benchmarks.cli import app
from catdog.benchmarks.common.env import REQUIRED_KEYS

runner = CliRunner()
TINY = ["--providers", "cpu", "--batch", "1,2", "--threads", "1", "--warmup", "1", "--iters", "3", "--block", "2",
        "--coldstart-runs", "0"]
CLI = [sys.executable, "-c", "from catdog.benchmarks.cli import main; main()"]
REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def report(tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    res = runner.invoke(app, ["run", str(tiny_export), "--name", "tiny", "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    return out / "tiny", json.loads((out / "tiny" / "report.json").read_text()), res.output


def test_report_files_and_schema(report):
    folder, rep, output = report
    assert rep["schema"] == "catdog-bench/1" and rep["name"] == "tiny"
    for key in ("env", "config", "artifacts", "latency", "peak", "ratios", "notes", "charts"):
        assert key in rep, key
    assert (folder / "report.md").read_text().startswith("# catdog-bench report: tiny")
    assert (folder / "latency_by_artifact.png").stat().st_size > 1000
    assert (folder / "latency_vs_batch.png").stat().st_size > 1000
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))  # atomic writes left nothing behind
    assert "onnx-fp32" in output and "INT8 vs fp32" in output


def test_artifacts_sizes_params_gflops(report, tiny_export):
    _, rep, _ = report
    arts = {a["name"]: a for a in rep["artifacts"]}
    assert set(arts) == {"onnx-fp32", "onnx-int8", "onnx-baked"}
    for a in arts.values():
        assert a["size_bytes"] > 0 and a["size_bytes"] == (tiny_export / a["path"].split("/")[-1]).stat().st_size
        assert a["params"] > 0
        assert a["gflops"] == pytest.approx(2 * tiny_macs() / 1e9)  # counted from the graph's shapes
    assert arts["onnx-baked"]["input_format"] == "uint8" and arts["onnx-fp32"]["input_format"] == "float"


def test_latency_numbers_consistent(report):
    _, rep, _ = report
    ok = [r for r in rep["latency"] if r["status"] == "ok"]
    assert {(r["artifact"], r["batch"]) for r in ok} == {(a, b) for a in ("onnx-fp32", "onnx-int8", "onnx-baked")
                                                         for b in (1, 2)}
    for r in ok:
        assert r["n"] == 3 and r["threads"] == 1 and r["provider"] == "cpu"
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"] and r["std_ms"] >= 0
        assert r["throughput_ips"] == pytest.approx(r["batch"] / (r["mean_ms"] / 1e3), rel=1e-6)
        assert r["create_s"] > 0 and r["first_run_ms"] > 0
        assert r["achieved_gflops"] > 0 and 0 < r["pct_peak"] < 100
    peak = rep["peak"][0]
    assert peak["gflops"] > 0.5 and peak["threads"] == 1


def test_ratios_are_reference_over_candidate(report):
    _, rep, _ = report
    p50 = {(r["artifact"], r["batch"]): r["p50_ms"] for r in rep["latency"] if r["status"] == "ok"}
    whats = {x["what"] for x in rep["ratios"]}
    assert {"INT8 vs fp32", "baked vs fp32"} <= whats
    for x in rep["ratios"]:
        assert x["speedup"] == pytest.approx(p50[(x["reference"], x["batch"])] / p50[(x["candidate"], x["batch"])])


def test_env_block_has_required_keys(report):
    _, rep, _ = report
    env = rep["env"]
    for key in REQUIRED_KEYS:
        assert key in env, key
    assert env["cores_logical"] >= 1 and env["ram_gb"] > 0
    assert "CPUExecutionProvider" in env["onnxruntime"]["providers"]
    assert set(env["opencv"]) >= {"version", "gstreamer", "v4l2", "gui"}
    assert isinstance(env["isa"]["avx2"], bool) and "neon" in env["isa"]


def test_compare_prints_ratios(report, tmp_path):
    folder, rep, _ = report
    other = dict(rep, name="slower")
    other["latency"] = [dict(r, p50_ms=r["p50_ms"] * 2, throughput_ips=r["throughput_ips"] / 2)
                        if r["status"] == "ok" else r for r in rep["latency"]]
    (tmp_path / "b.json").write_text(json.dumps(other))
    res = runner.invoke(app, ["compare", str(folder / "report.json"), str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("onnx-")]
    assert len(lines) == 6 and all("2.00x" in ln and "0.50x" in ln for ln in lines)


def test_compare_rejects_non_report(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    res = runner.invoke(app, ["compare", str(tmp_path / "x.json"), str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "not a catdog-bench report" in res.output


def test_requesting_a_missing_provider_is_a_clear_error(tiny_export, tmp_path):
    from catdog.benchmarks.grid.artifacts import resolve_providers
    from catdog.runtime.engine.session import INSTALL_HINTS, PROVIDERS

    # cuda on the CPU wheel (unless torch alone sees a GPU: then cuda is offered for torch rows)
    missing = next(p for p in PROVIDERS if p not in resolve_providers(None, torch_ok=True))
    res = runner.invoke(app, ["run", str(tiny_export), "--out", str(tmp_path), "--providers", f"cpu,{missing}"])
    assert res.exit_code == 2
    assert f"provider '{missing}' is not available" in res.output and INSTALL_HINTS[missing] in res.output
    assert "Traceback" not in res.output and not (tmp_path / tiny_export.name).exists()


def test_bad_inputs_are_one_line_errors(tmp_path):
    res = runner.invoke(app, ["run", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no such file or folder" in res.output
    res = runner.invoke(app, ["run", str(tmp_path), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no model files" in res.output
    res = runner.invoke(app, ["run", str(tmp_path), "--batch", "0,x"])
    assert res.exit_code == 2 and "--batch" in res.output


@pytest.mark.torch
def test_torch_eager_and_torchscript_rows(tiny_export, torch_artifacts, tmp_path):
    res = runner.invoke(app, ["run", str(tiny_export / "model.onnx"), str(torch_artifacts / "model.ts"),
                              "--torch-ckpt", str(torch_artifacts / "best.pth"), "--name", "t",
                              "--out", str(tmp_path), *TINY, "--no-peak"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "t" / "report.json").read_text())
    ok = {(r["artifact"], r["batch"]): r for r in rep["latency"] if r["status"] == "ok"}
    assert {("torchscript", 1), ("torchscript", 2), ("torch-eager", 1), ("torch-eager", 2)} <= set(ok)
    assert all(0 < r["p50_ms"] <= r["p99_ms"] for r in ok.values())
    whats = {x["what"] for x in rep["ratios"]}
    assert {"ORT fp32 vs torch eager", "ORT fp32 vs TorchScript", "TorchScript vs torch eager"} <= whats
    kinds = {a["name"]: a["kind"] for a in rep["artifacts"]}
    assert kinds["torch-eager"] == "torch" and kinds["torchscript"] == "torchscript"


def test_fixed_batch_graph_is_reported_skipped(tmp_path):
    from catdog.benchmarks.doctor import tiny_classifier

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(tiny_classifier(32, batch=1))
    res = runner.invoke(app, ["run", str(tmp_path / "m"), "--name", "f", "--out", str(tmp_path), *TINY, "--no-peak"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "f" / "report.json").read_text())
    by_batch = {r["batch"]: r for r in rep["latency"]}
    assert by_batch[1]["status"] == "ok"
    assert by_batch[2]["status"] == "skipped" and "fixed batch of 1" in by_batch[2]["note"]
    assert "fixed batch of 1" in (tmp_path / "f" / "report.md").read_text()


def test_name_must_stay_inside_out(tiny_export, tmp_path):
    # --name is joined to --out: '../x' wrote beside it. Refused in one line, before any work.
    out = tmp_path / "out"
    res = subprocess.run([*CLI, "run", str(tiny_export), "--out", str(out), "--name", "../x", *TINY, "--no-peak"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: --name '../x': a report name is one folder name of letters, digits, '_', '.' and '-' "
        "(not '.' or '..'); the report goes to --out/NAME"]
    assert not (tmp_path / "x").exists() and not out.exists() and res.stdout == ""
    for bad in ("..", ".", "a/b", str(tmp_path / "abs"), "x y", "", "[bold]"):
        res = runner.invoke(app, ["run", str(tiny_export), "--out", str(out), "--name", bad])
        assert res.exit_code == 2 and f"error: --name {bad!r}:" in res.output, (bad, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == [] and not out.exists()


def test_root_debug_option_shows_the_traceback(tiny_export, tmp_path):
    res = runner.invoke(app, ["--debug", "run", str(tiny_export), "--out", str(tmp_path), "--name", "../x"])
    assert res.exit_code == 2 and "Traceback" in res.output and "error: --name '../x'" in res.output
    res = runner.invoke(app, ["run", str(tiny_export), "--out", str(tmp_path), "--name", "../x"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_bracketed_names_print_as_typed(tiny_export, tmp_path):
    # File and folder names reach rich's log lines: '[red]' must not be read as markup (hiding
    # itself and colouring the text) and a path holding '[/x]' must not crash with a MarkupError.
    d = tmp_path / "a[bold]"
    d.mkdir()
    shutil.copy(tiny_export / "model.onnx", d / "[red]m.onnx")
    missing = tmp_path / "v[" / "x].mp4"
    res = runner.invoke(app, ["run", str(d / "[red]m.onnx"), "--name", "b", "--out", str(tmp_path), *TINY,
                              "--no-peak", "--video", str(missing)])
    assert res.exit_code == 0, res.output
    assert "1 artifacts: [red]m; providers cpu" in res.output
    assert f"pipeline: failed: {missing}: no such video file" in res.output
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [a["name"] for a in rep["artifacts"]] == ["[red]m"] and str(d) in rep["artifacts"][0]["path"]


def test_gpu_check_summary_of_a_real_benchmark_report(report, tmp_path):
    folder, rep, _ = report  # test_run's tiny CPU benchmark: GPU rows are n/a, the CPU row has its p50
    shutil.copytree(folder, tmp_path / "gpu-x" / "bench")
    (tmp_path / "gpu-x" / "steps.txt").write_text("failed: none\n")
    helper = [sys.executable, str(REPO / "scripts" / "gpu_check.py")]
    subprocess.run([*helper, "summary", str(tmp_path / "gpu-x")], capture_output=True, text=True, check=True)
    md = (tmp_path / "gpu-x" / "summary.md").read_text()
    p50 = next(r["p50_ms"] for r in rep["latency"] if (r["artifact"], r["batch"]) == ("onnx-fp32", 1))
    assert "| onnx-fp32 on tensorrt | n/a | n/a | n/a | n/a |" in md
    assert f"| onnx-fp32 on cpu | {p50:.2f} | n/a |" in md
    assert "## Export parity\n\nnot run" in md and "failed: none" in md
