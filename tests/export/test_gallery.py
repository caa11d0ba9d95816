"""INT8 vs fp32 disagreements and per-class accuracy in the export report (export/output/gallery.py), on
real photos and real exports: a fragile INT8 (a random-init net calibrated on one photo) disagrees
with fp32 ONNX on some photos, which the report lists and a PNG grid of the photos shows; the grids
follow their report's name (export-report.failed.* over an earlier export), go with it when it is
replaced or moved aside, and an export whose INT8 agrees everywhere writes none and says so."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from testkit.export import CLASSES, par_spec, photos

from catdog.export.builders.simplify import run_onnx
from catdog.export.output.gallery import BAND, COLS, MAX_TILES, TILE, gallery_name, grid, per_class, write_galleries
from catdog.export.output.publish import stale_files
from catdog.export.output.report import FAILED_STEM, ParitySet
from catdog.export.output.report_sections import per_class_lines
from catdog.export.pipeline import ExportOptions, run_export
from catdog.export.verify.images import load_images
from catdog.runtime.spine.errors import GateError
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.metrics import softmax_t
from catdog.runtime.spine.preprocess import preprocess_batch

ARCH = "efficientnet_lite0"


def _opts(ckpt, out, photo_dir, **kw) -> ExportOptions:
    # one calibration photo, full decode: ranges the other photos overflow (as test_gates.py's fragile INT8)
    return ExportOptions(ckpt=ckpt, out=out, int8_for=("cpu",), calib=photo_dir, calib_count=1, parity=(photo_dir,),
                         labels_from_names=True, latency_runs=1, full_decode=True, **kw)


@pytest.fixture(scope="module")
def fragile(ckpt_factory, photo_dir, tmp_path_factory):
    """A published export (--allow-gate-failure) whose INT8 changes answers: (out, report JSON)."""
    out = tmp_path_factory.mktemp("gallery")
    run_export(_opts(ckpt_factory(ARCH, pretrained=False), out, photo_dir, allow_gate_failure=True))
    return out, json.loads((out / "export-report.json").read_text())


def test_disagreements_are_listed_and_shown_in_a_grid(fragile, photo_dir):
    out, report = fragile
    d = report["parity_sets"][0]["disagreements"]["int8"]
    # the rows are what the published artifacts give on the parity photos, as the export read them
    par = load_images(photo_dir, 100, CLASSES, from_names=True)
    x = preprocess_batch(list(par.images), par_spec(out))
    fp32, int8 = (run_onnx(onnx.load(str(out / f)), x) for f in ("model.onnx", "model.int8.onnx"))
    wrong = np.flatnonzero(fp32.argmax(1) != int8.argmax(1))
    assert 0 < len(wrong) == d["count"] and d["of"] == 12 and d["against"] == "onnx"
    assert {r["file"] for r in d["rows"]} == {par.paths[i].name for i in wrong}
    t = report["temperature"]
    for r in d["rows"]:
        i = r["index"]
        assert r["label"] == CLASSES[par.labels[i]] == r["file"].split(".")[0]
        assert (r["fp32"]["class"], r["int8"]["class"]) == (CLASSES[fp32[i].argmax()], CLASSES[int8[i].argmax()])
        assert r["int8"]["score"] == pytest.approx(softmax_t(int8[i : i + 1], t).max(), abs=1e-4)
    assert [r["fp32"]["score"] for r in d["rows"]] == sorted((r["fp32"]["score"] for r in d["rows"]), reverse=True)
    # the grid: one tile per row, COLS a row, each a TILE-px photo over a BAND-px caption
    assert d["gallery"] == "int8-disagreements-1.png"
    png = cv2.imread(str(out / d["gallery"]))
    rows, cols = -(-d["count"] // COLS), min(COLS, d["count"])
    assert png is not None and png.shape == (rows * (TILE + BAND), cols * TILE, 3)
    assert png[:TILE, :TILE].std() > 10  # a photo, not a blank tile
    md = (out / "export-report.md").read_text()
    assert "## INT8 vs fp32 disagreements" in md and f"grid: `{d['gallery']}`" in md
    assert f"{d['count']} of 12 photos disagree" in md
    for r in d["rows"]:
        assert (f"| {r['file']} | {r['label']} | {r['fp32']['class']} {r['fp32']['score']:.3f} | "
                f"{r['int8']['class']} {r['int8']['score']:.3f} |") in md
    # per-class accuracy of the eager reference and of every artifact
    per = report["parity_sets"][0]["per_class"]
    assert [(c["class"], c["n"]) for c in per] == [("cat", 6), ("dog", 6)]
    labels = np.asarray(par.labels)
    for c, i in zip(per, range(2), strict=True):
        assert set(c["correct"]) == {"eager", "torchscript", "onnx", "int8"}
        assert c["correct"]["int8"] == int(np.sum((labels == i) & (int8.argmax(1) == i)))
    assert "| class | n | eager | torchscript | onnx | int8 |" in md


def test_a_failed_report_has_its_own_grid_which_goes_with_it(fragile, ckpt_factory, photo_dir):
    out, report = fragile
    with pytest.raises(GateError):
        run_export(_opts(ckpt_factory(ARCH, pretrained=False), out, photo_dir))
    failed = json.loads((out / "export-report.failed.json").read_text())
    assert failed["parity_sets"][0]["disagreements"]["int8"]["gallery"] == "int8-disagreements-1.failed.png"
    assert cv2.imread(str(out / "int8-disagreements-1.failed.png")) is not None
    assert (out / "int8-disagreements-1.png").is_file()  # the published export's grid stays with its report
    # publishing moves the failed report aside with its grid; the published report's grid is replaced
    assert stale_files(out, ["model.onnx"]).count("int8-disagreements-1.failed.png") == 1
    assert "int8-disagreements-1.png" not in stale_files(out, ["model.onnx"])


def test_no_disagreement_writes_no_grid_and_says_so(exported):
    out, report, _ = exported(ARCH)
    assert report.passed and not list(out.glob("*.png"))
    found = report.parity_sets[0].disagreements
    assert set(found) == {"int8", "int8-trt"} and all(d["count"] == 0 and d["gallery"] is None for d in found.values())
    md = (out / "export-report.md").read_text()
    lines = md[md.index("## INT8 vs fp32 disagreements"):].splitlines()
    assert lines[2].startswith("None: every INT8 artifact (int8, int8-trt) gives the fp32 ONNX graph's top-1 class")
    assert lines[3] == "" and lines[4].startswith("## ")  # one line, then the next section


def test_the_grid_has_one_tile_per_photo_up_to_its_cap(data_dir):
    images = [read_image(p) for p in photos(data_dir)]
    rows = [{"index": i % len(images), "file": f"photo-{i}.jpg", "label": None, "fp32": {"class": "cat", "score": 0.9},
             "int8": {"class": "dog", "score": 0.6}} for i in range(30)]
    assert grid(images, rows[:8], "int8").shape == (2 * (TILE + BAND), COLS * TILE, 3)
    assert grid(images, rows[:2], "int8").shape == (TILE + BAND, 2 * TILE, 3)
    assert grid(images, rows, "int8").shape == (MAX_TILES // COLS * (TILE + BAND), COLS * TILE, 3)  # capped


def test_writing_a_report_removes_its_stem_s_older_grids(tmp_path):
    for name in ("int8-disagreements-1.png", "int8-trt-disagreements-2.png", "int8-disagreements-1.failed.png",
                 "my-disagreements-1.png"):
        (tmp_path / name).write_bytes(b"older")
    ps = ParitySet("photos", 3, None, None, disagreements={"int8": {"count": 0, "rows": [], "gallery": None}})
    report = type("R", (), {"parity_sets": [ps]})()
    assert write_galleries(report, [[]], tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8-disagreements-1.failed.png", "my-disagreements-1.png"]
    assert gallery_name("int8-trt", 2, FAILED_STEM) == "int8-trt-disagreements-2.failed.png"


def test_many_classes_show_the_worst_ten():
    labels = np.repeat(np.arange(25), 4)
    logits = np.eye(25)[labels]
    wrong = logits.copy()
    wrong[np.arange(0, 100, 4)[:12]] = np.eye(25)[(labels[np.arange(0, 100, 4)[:12]] + 1) % 25]  # 12 classes lose one
    rows = per_class(labels, {"eager": logits, "int8": wrong}, [f"c{i}" for i in range(25)])
    lines = per_class_lines(rows)
    assert lines[1] == "Per-class accuracy (the 10 worst of 25 classes, by their lowest accuracy in any column):"
    table = lines[3:]
    assert table[0] == "| class | n | eager | int8 |" and len(table) == 2 + 10
    assert all(line.endswith("| 100.0% (4/4) | 75.0% (3/4) |") for line in table[2:])
