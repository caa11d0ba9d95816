"""The report's optional sections on real photos and a real video file (written with OpenCV)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from catdog.benchmarks.cli import app
from catdog.benchmarks.run.contenders import HERE, run_once
from catdog.runtime.spine.metrics import format_accuracy

runner = CliRunner()
REFERENCE = Path(__file__).parents[2] / "reports" / "cpu-reference" / "report.json"  # written before the records


@pytest.fixture(scope="module")
def video(tmp_path_factory, labeled_dir):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    frames = sorted(labeled_dir.glob("*.jpg")) * 2
    for f in frames:
        w.write(cv2.resize(cv2.imread(str(f)), (96, 72)))
    w.release()
    return path, len(frames)


@pytest.fixture(scope="module")
def full(tiny_export, junk_dir, video, tmp_path_factory):
    # junk_dir: the six photos plus a `._cat.1.jpg` (not a JPEG) and a hidden copy of a photo; every
    # section must see the six (accuracy n, folder images), none may fail on the junk
    out = tmp_path_factory.mktemp("reports")
    res = runner.invoke(app, ["run", str(tiny_export / "model.onnx"), str(tiny_export / "model.baked.onnx"),
                              str(tiny_export / "model.int8.onnx"),
                              "--name", "full", "--out", str(out), "--providers", "cpu", "--batch", "1",
                              "--threads", "1", "--warmup", "1", "--iters", "3", "--data", str(junk_dir),
                              "--video", str(video[0]), "--coldstart-runs", "1", "--large-photos", "2", "--no-peak"])
    assert res.exit_code == 0, res.output
    return json.loads((out / "full" / "report.json").read_text()), (out / "full")


def test_layout_is_the_one_old_reports_have(full):
    # report.json is built from typed records now; its layout must stay the one `compare` and
    # report.md read in reports written before (the committed reference report is one)
    rep, _ = full
    old = json.loads(REFERENCE.read_text())
    # Keys may be added (the large-photos section, its config field), never moved or removed.
    assert [k for k in rep if k in old] == list(old)
    for key in ("config", "load_average"):
        assert [k for k in rep[key] if k in old[key]] == list(old[key]), key
    for key in ("artifacts", "latency", "peak", "ratios"):
        if rep[key]:
            assert list(rep[key][0]) == list(old[key][0]), key
    for key in ("accuracy", "coldstart", "overhead", "folder", "pipeline"):
        assert list(rep[key]) == list(old[key]), key
        old_row = list(old[key]["rows"][0])  # fields may be added at the end (accuracy's interval), never moved
        assert list(rep[key]["rows"][0])[: len(old_row)] == old_row, key
        assert "error" not in rep[key], key


def test_compare_reads_a_report_written_before(full, tmp_path):
    rep, folder = full
    res = runner.invoke(app, ["compare", str(REFERENCE), str(folder / "report.json")])
    assert res.exit_code == 0, res.output
    assert any(ln.startswith("onnx-fp32      cpu          1     1") for ln in res.output.splitlines()), res.output


def test_accuracy_per_artifact(full):
    rep, folder = full
    rows = {r["artifact"]: r for r in rep["accuracy"]["rows"]}
    assert set(rows) == {"onnx-fp32", "onnx-baked", "onnx-int8"}
    for r in rows.values():
        assert r["n"] == 6 and 0.0 <= r["accuracy"] <= 1.0
        assert r["accuracy_ci95"] == format_accuracy(round(r["accuracy"] * 6), 6)  # e.g. "83.33% (43.6–97.0, n=6)"
    # The baked graph normalizes inside; fed the same crops it must score exactly like fp32.
    assert rows["onnx-baked"]["accuracy"] == rows["onnx-fp32"]["accuracy"]
    # agreement figures come from export's parity code (importable here: torch is installed)
    assert rep["accuracy"]["reference"] == "onnx-fp32"
    assert rows["onnx-fp32"]["top1_agreement"] == 1.0 and rows["onnx-fp32"]["max_abs_logit"] == 0.0
    assert rows["onnx-baked"]["top1_agreement"] == 1.0 and rows["onnx-baked"]["max_abs_logit"] < 1e-4
    assert (folder / "accuracy_vs_latency.png").stat().st_size > 1000


def test_coldstart_rows(full):
    rep, _ = full
    rows = {r["pipeline"]: r for r in rep["coldstart"]["rows"]}
    assert {"runtime CLI", "bare onnxruntime script"} <= set(rows)
    for r in rows.values():
        assert 0 < r["first_label_s"] <= r["exit_s"] and 10 < r["peak_rss_mb"] < 4000
    assert rows["bare onnxruntime script"]["vs_bare_time"] == 1.0
    # the INT8 model (the CPU default) against the bare script on the same INT8 file
    assert {"runtime CLI, onnx-int8", "bare onnxruntime script, onnx-int8"} <= set(rows)
    assert rows["bare onnxruntime script, onnx-int8"]["vs_bare_time"] == 1.0
    assert rows["bare onnxruntime script"]["vs_bare_exit"] == 1.0
    cli8, bare8 = rows["runtime CLI, onnx-int8"], rows["bare onnxruntime script, onnx-int8"]
    assert cli8["vs_bare_exit"] == pytest.approx(cli8["exit_s"] / bare8["exit_s"])
    assert '"label"' in rows["runtime CLI"]["output"] and rows["bare onnxruntime script"]["output"] in ("cat", "dog")


def test_overhead_and_folder(full):
    rep, _ = full
    over = {r["path"]: r for r in rep["overhead"]["rows"]}
    assert over["bare preprocess + session.run"]["overhead_ms"] == 0
    assert over["runtime Classifier.predict"]["p50_ms"] > 0
    rows = rep["folder"]["rows"]
    assert len(rows) >= 4 and all(r["images"] == 6 and r["images_per_s"] > 0 and r["median_s"] > 0 for r in rows)
    by = {r["pipeline"].split(" (")[0]: r for r in rows}  # fp32 and INT8, each against its own bare script
    assert {"runtime, onnx-fp32", "runtime, onnx-int8", "bare onnxruntime script, onnx-fp32",
            "bare onnxruntime script, onnx-int8"} <= set(by)
    assert by["bare onnxruntime script, onnx-int8"]["vs_bare"] == 1.0
    assert by["runtime, onnx-int8"]["vs_bare"] == pytest.approx(
        by["runtime, onnx-int8"]["images_per_s"] / by["bare onnxruntime script, onnx-int8"]["images_per_s"])
    # the runtime and the hand-written bare script label every photo alike: one preprocessing
    assert all(r["label_agreement_vs_bare"] == 1.0 for r in rows)


def test_large_photos_reduced_vs_full_decode(full, junk_dir):
    """Two ~12 MP phone-like copies (balanced: a cat and a dog), each model with both decodes."""
    from catdog.runtime.spine.images import header_size

    rep, folder = full
    rows = rep["large"]["rows"]
    assert [(r["model"], r["decode"].split(" ")[0]) for r in rows] == [
        ("onnx-fp32", "reduced"), ("onnx-fp32", "full"), ("onnx-int8", "reduced"), ("onnx-int8", "full")]
    from catdog.benchmarks.grid.artifacts import balanced
    from catdog.benchmarks.run.large import cache_dir
    from catdog.runtime.spine.folders import scan

    copies = sorted(cache_dir(list(balanced(scan(junk_dir), 2).paths)).glob("*.jpg"))
    assert len(copies) == 2 and [c.name.split("-", 1)[1].split(".")[0] for c in copies] == ["cat", "dog"]
    for c in copies:
        w, h = header_size(c.read_bytes())
        assert abs(w * h - 12e6) < 0.01 * 12e6 and (w, h) == (4000, 3000)  # 64x48 keeps its 4:3
    for r in rows:
        assert r["photos"] == 2 and r["images_per_s"] > 0 and r["decode_ms"] > 0
        assert r["accuracy"].endswith("n=2)") and r["originals_identical"] == "2/2"
        if r["decode"].startswith("full"):
            assert r["vs_full_decode"] == 1.0 and r["agreement_vs_full"] == 1.0
        assert 0.0 <= r["agreement_vs_full"] <= 1.0


def test_video_pipeline_stages(full, video):
    rep, _ = full
    sync, piped = rep["pipeline"]["rows"]
    assert sync["mode"] == "sync" and piped["mode"].startswith("pipelined")
    for r in (sync, piped):
        assert r["frames"] == video[1] and r["fps"] > 0
        assert all(r[k] > 0 for k in ("decode_ms", "preprocess_ms", "infer_ms", "post_ms"))
    assert piped["speedup_vs_sync"] == pytest.approx(piped["fps"] / sync["fps"])


def test_missing_video_is_recorded_not_fatal(tiny_export, tmp_path):
    res = runner.invoke(app, ["run", str(tiny_export / "model.onnx"), "--out", str(tmp_path), "--name", "v",
                              "--providers", "cpu", "--batch", "1", "--threads", "1", "--iters", "2", "--warmup", "0",
                              "--video", str(tmp_path / "none.mp4"), "--coldstart-runs", "0", "--no-peak"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "v" / "report.json").read_text())
    assert "no such video file" in rep["pipeline"]["error"]
    assert any("pipeline section failed" in n for n in rep["notes"])


def test_bare_script_matches_runtime_label(tiny_export, labeled_dir):
    img = sorted(labeled_dir.glob("*.jpg"))[0]
    bare = subprocess.run([sys.executable, str(HERE / "bare_ort.py"), str(tiny_export / "model.onnx"), str(img)],
                          capture_output=True, text=True, check=True).stdout.strip()
    from catdog.runtime.engine.classifier import Classifier

    clf = Classifier.from_file(tiny_export / "model.onnx", provider="cpu", log=None)
    assert bare == clf.predict(img).label


def test_run_once_reports_failure_clearly():
    from catdog.runtime.spine.errors import InputError

    with pytest.raises(InputError, match="exit 3"):
        run_once([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_runs_without_torch(tiny_export, labeled_dir, video, tmp_path):
    # torch blocked in a fresh interpreter (sys.modules[name] = None makes `import torch` fail):
    # every ONNX measurement and section must still work, and the report says torch is absent.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from catdog.benchmarks.cli import app\n"
        f"app(['run', {str(tiny_export)!r}, '--name', 'nt', '--out', {str(tmp_path)!r}, '--providers', 'cpu',"
        f" '--batch', '1', '--threads', '1', '--iters', '2', '--warmup', '0', '--data', {str(labeled_dir)!r},"
        f" '--video', {str(video[0])!r}, '--coldstart-runs', '1', '--no-peak'], standalone_mode=False)\n"
        "assert sys.modules['torch'] is None\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    rep = json.loads((tmp_path / "nt" / "report.json").read_text())
    assert rep["env"]["torch"] is None
    for key in ("accuracy", "coldstart", "overhead", "folder", "pipeline"):
        assert rep[key]["rows"] and "error" not in rep[key], key
    assert "n/a" in rep["accuracy"]["about"]  # export's parity code needs torch: said, not faked
    assert not any(r["pipeline"] == "torch pipeline" for r in rep["coldstart"]["rows"])
