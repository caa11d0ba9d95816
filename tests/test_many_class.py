"""Many classes end to end, as a user runs them: a 5-class and a 10-class folder of real JPEGs
(testkit.shapes: a hue and a shape per class) -> catdog-train from the s1 preset at 32 px for one
epoch (a quarter-width alexnet_cifar, flags given over the preset) -> catdog-export with every
artifact, INT8 calibrated on real images, every gate -> catdog-runtime with top-k on the
validation photos and on a large photo it must shrink to 32 px. The labels printed are the
dataset's class names, top-k has k of them, and the training report has each class's accuracy.
One trained model and one export per dataset (module-scoped)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.export import cli as export_cli
from testkit.export import run_app
from testkit.shapes import FLOWERS, TEN, shapes_folder

from catdog.export.artifacts.formats import FORMATS
from catdog.export.builders.meta import read_onnx_metadata
from catdog.train.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"
K = 3  # --topk
ARTIFACTS = ["torchscript", "onnx", "int8", "fp16", "baked"]


def train_cli(*args) -> int:
    """catdog-train in this process; -> exit code."""
    from catdog.train.cli import app

    return run_app(app, "catdog-train", *args)


def runtime(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", *map(str, args), "--provider", "cpu"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module", params=[FLOWERS, TEN], ids=["5-classes", "10-classes"])
def built(request, tmp_path_factory):
    """(names, train, val, run, export) of one dataset: trained once, exported once."""
    names = request.param
    root = tmp_path_factory.mktemp(f"many-{len(names)}")
    train = shapes_folder(root / "train", names, 32, seed=0)
    val = shapes_folder(root / "val", names, 4, seed=1)
    run, exp = root / "run", root / "export"
    code = train_cli("--preset", "s1-alexnet-cifar10", "--data", train, "--val", val, "--arch-kw", "width=0.25",
                     "--arch-kw", "dropout=0", "--optimizer", "adam", "--lr", "5e-4", "--batch-size", "4",
                     "--epochs", "1", "--workers", "0", "--out", run, "--quiet")
    assert code == 0
    code = export_cli("--ckpt", run / "best.pth", "--out", exp, "--int8", "--calib", train, "--parity", val,
                      "--fp16", "--bake-preprocess", "--latency-runs", "1")
    assert code == 0
    return names, train, val, run, exp


def test_the_training_report_has_each_class_s_accuracy(built):
    names, _, val, run, _ = built
    report = json.loads((run / "report.json").read_text())
    per_class = report["validation"]["per_class"]
    assert report["classes"] == sorted(names) and sorted(per_class) == sorted(names)
    assert all(r["n"] == 4 and 0 <= r["correct"] <= 4 and r["ci95_low"] <= r["accuracy"] <= r["ci95_high"]
               for r in per_class.values())
    assert sum(r["correct"] for r in per_class.values()) == report["validation"]["correct"]
    assert report["validation"]["accuracy"] == pytest.approx(report["best_val_acc"])
    assert report["best_val_acc"] >= 2 / len(names)  # one epoch learns something: twice chance or more
    assert (run / "per_class.png").stat().st_size > 0 and (run / "confusion.png").stat().st_size > 0
    cfg = load_checkpoint(run / "best.pth").train_config  # the preset under the flags given
    assert (cfg["arch"], cfg["size"], cfg["momentum"], cfg["scheduler"]) == ("alexnet_cifar", 32, 0.9, "step")
    assert (cfg["optimizer"], cfg["lr"], cfg["arch_kwargs"]) == ("adam", 5e-4, {"width": 0.25, "dropout": 0})


def test_every_artifact_passes_every_gate_and_carries_the_classes(built):
    names, _, _, run, exp = built
    report = json.loads((exp / "export-report.json").read_text())
    assert report["passed"] and report["published"] and report["failures"] == []
    assert [a["name"] for a in report["artifacts"]] == ARTIFACTS
    ckpt = load_checkpoint(run / "best.pth")
    for name in ARTIFACTS[1:]:
        meta = read_onnx_metadata(exp / FORMATS[name].filename)
        assert meta.classes == tuple(sorted(names)) and meta.spec.size == 32
        assert (meta.spec.mean, meta.spec.std) == (ckpt.spec.mean, ckpt.spec.std)


def _table(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """catdog-runtime's table with --topk: source, then one line per class (the source on the first)."""
    rows: dict[str, list[tuple[str, float]]] = {}
    lines = stdout.strip().splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["source", f"top {K}", "score"]
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 3:
            source = cells[0]
            rows[source] = []
        rows[source].append((cells[-2], float(cells[-1])))
    return rows


def test_the_runtime_prints_the_class_names_top_k_and_the_export_s_accuracy(built):
    names, _, val, _, exp = built
    model = exp / "model.int8.onnx"
    table = _table(runtime(val, "-r", "--model", model, "--topk", K).stdout)
    assert len(table) == 4 * len(names)
    for top in table.values():
        labels, scores = [t[0] for t in top], [t[1] for t in top]
        assert len(top) == K and len(set(labels)) == K and set(labels) <= set(names)
        assert scores == sorted(scores, reverse=True)
    r = runtime(val, "-r", "--model", model, "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert all(set(x["probs"]) == set(names) and x["label"] in names for x in rows)
    assert {Path(x["source"]).name: x["label"] for x in rows} == {Path(s).name: t[0][0] for s, t in table.items()}
    correct = sum(x["label"] == Path(x["source"]).parent.name for x in rows)
    assert f"accuracy      {100 * correct / len(rows):.2f}%" in r.stderr  # the summary's, from the folder names
    # One preprocess() everywhere: training validation, export parity and the runtime count the same photos right.
    (parity,) = json.loads((exp / "export-report.json").read_text())["parity_sets"]
    int8 = next(a for a in parity["artifacts"] if a["name"] == "int8")
    assert int8["accuracy"]["correct"] == correct and int8["accuracy"]["n"] == len(rows)
    trained = json.loads((built[3] / "report.json").read_text())["validation"]
    assert parity["eager_accuracy"]["correct"] == trained["correct"] and trained["n"] == len(rows)


def test_a_large_photo_is_shrunk_to_32_px_and_named_with_the_classes(built):
    names, _, _, _, exp = built
    table = _table(runtime(DATA / "dog.jpg", "--model", exp / "model.onnx", "--topk", K).stdout)
    (top,) = table.values()
    assert len(top) == K and {t[0] for t in top} <= set(names)


def test_the_benchmark_measures_the_export_on_the_labelled_folder(built, tmp_path):
    """catdog-bench run on the export, with the validation folder as --data: a latency row for every
    artifact and an accuracy row each, counted against the dataset's own class folders."""
    from typer.testing import CliRunner

    from catdog.benchmarks.cli import app

    names, _, val, _, exp = built
    res = CliRunner().invoke(app, ["run", str(exp), "--data", str(val), "--name", "many", "--out", str(tmp_path),
                                   "--providers", "cpu", "--batch", "1,2", "--threads", "1", "--warmup", "1",
                                   "--iters", "3", "--block", "2", "--coldstart-runs", "0"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "many" / "report.json").read_text())
    acc = {r["artifact"]: r for r in rep["accuracy"]["rows"]}
    assert {"onnx-fp32", "onnx-int8"} <= set(acc), sorted(acc)
    assert all(r["n"] == 4 * len(names) and 0.0 <= r["accuracy"] <= 1.0 for r in acc.values())
    assert acc["onnx-int8"]["top1_agreement"] is not None
    assert {r["artifact"] for r in rep["latency"] if r["status"] == "ok"} >= {"onnx-fp32", "onnx-int8"}
