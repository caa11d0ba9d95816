"""Issue 10, export half, on one export of a calibrated efficientnet_lite0 (real photos, real ONNX
Runtime sessions): the checkpoint's temperature and calibration record reach every artifact;
--tta-flip averages the photo and its mirror image inside every graph, and the runtime runs it as
is; parity is reported and gated per set with Wilson intervals and ECE; INT8's choices are made on
held-out calibration images, never on the parity sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto
from testkit.export import CLASSES, cli, make_ckpt, photos

from catdog.export.formats import FORMATS
from catdog.export.images import held_out, load_images
from catdog.export.int8_choice import choose_int8
from catdog.export.meta import read_onnx_metadata
from catdog.export.pipeline import ExportOptions, artifact_names, run_export
from catdog.export.quantize import KEEP_FP32, Int8Quantizer, boundary_layers
from catdog.export.simplify import run_onnx
from catdog.export.torchscript import load_torchscript
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.spine.errors import GateError
from catdog.runtime.spine.metrics import ece, format_accuracy, softmax_t
from catdog.runtime.spine.preprocess import preprocess_batch, resize_crop
from catdog.train.checkpoint import build_model, load_checkpoint

ARCH = "efficientnet_lite0"
T = 4.0  # large: the test model is overconfident (|dlogit| 11-15 on set A), and T must visibly move its scores
CALIBRATION = {"temperature": T, "val_images": 40, "ece_bins": 15, "ece_before": 0.081, "ece_after": 0.012,
               "nll_before": 0.31, "nll_after": 0.22}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, data_dir) -> dict[str, Path]:
    """calib: 4 cats + 4 dogs; parity A: the other 4 photos, Kaggle names; parity B: the same 4 in
    class folders (another label source)."""
    root = tmp_path_factory.mktemp("issue10")
    d = {"calib": root / "calib", "a": root / "kaggle", "b": root / "classes"}
    for label in CLASSES:
        (d["b"] / label).mkdir(parents=True)
        mine = [p for p in photos(data_dir) if p.name.startswith(f"{label}.")]
        for p in mine[:4]:
            d["calib"].mkdir(exist_ok=True)
            shutil.copy(p, d["calib"] / p.name)
        for p in mine[4:]:
            d["a"].mkdir(exist_ok=True)
            shutil.copy(p, d["a"] / p.name)
            shutil.copy(p, d["b"] / label / p.name)
    return d


@pytest.fixture(scope="module")
def tta(tmp_path_factory, data_dir, folders):
    ckpt = make_ckpt(tmp_path_factory.mktemp("ckpt-t") / "best.pth", ARCH, data_dir, temperature=T,
                     calibration=CALIBRATION)
    out = tmp_path_factory.mktemp("export-tta")
    opts = ExportOptions(ckpt=ckpt, out=out, calib=folders["calib"], calib_count=5, parity=(folders["a"], folders["b"]),
                         labels_from_names=True, int8=True, fp16=True, bake=True, tta_flip=True, latency_runs=2)
    return out, run_export(opts), ckpt, opts


def set_a(folders, spec):
    """Parity set A, read as the export reads it (the spine's decode for the model's spec): the
    images and their labels."""
    par = load_images(folders["a"], 100, CLASSES, from_names=True, spec=spec)
    return par, np.asarray(par.labels)


def test_every_artifact_carries_the_temperature_calibration_and_tta(tta):
    out, report, _, _ = tta
    built = [FORMATS[a.name] for a in report.artifacts]
    metas = {f.name: read_onnx_metadata(out / f.filename) for f in built if f.kind == "onnx"}
    _, metas["torchscript"] = load_torchscript(out / "model.ts")
    for name, meta in metas.items():
        assert meta.temperature == T and meta.extra["calibration"] == CALIBRATION and meta.extra["tta"] == "hflip", name
    assert report.temperature == T and report.tta == "hflip" and report.calibration == CALIBRATION
    md = (out / "export-report.md").read_text()
    assert ("temperature 4 in every artifact's metadata "
            "(fitted on 40 validation images: ECE, 15 bins, 8.10% -> 1.20%)") in md
    assert "test-time augmentation: horizontal flip" in md


def test_tta_artifacts_average_the_plain_model_on_the_photo_and_its_mirror(tta, folders):
    out, _, ckpt_path, _ = tta
    ckpt = load_checkpoint(ckpt_path)
    plain = build_model(ckpt)
    par, _ = set_a(folders, ckpt["spec"])
    x = preprocess_batch(list(par.images), ckpt["spec"])
    with torch.no_grad():
        once, mirrored = plain(torch.from_numpy(x)).numpy(), plain(torch.from_numpy(x[..., ::-1].copy())).numpy()
    expected = (once + mirrored) / 2
    assert np.max(np.abs(once - mirrored)) > 1e-2  # the mirror image is another input: TTA changes logits
    crops = np.stack([resize_crop(im, ckpt["spec"]) for im in par.images])
    for name, inputs in (("onnx", x), ("baked", crops), ("fp16", x)):
        got = run_onnx(onnx.load(str(out / FORMATS[name].filename)), inputs)
        np.testing.assert_allclose(got, expected, atol=1e-2 if name == "fp16" else 1e-4, rtol=0, err_msg=name)
    module, _ = load_torchscript(out / "model.ts")
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), expected, atol=1e-5, rtol=0)
    # one input, two passes: the stem and the classifier twice in the graph, the weights once
    fp32 = onnx.load(str(out / "model.onnx"))
    assert len(fp32.graph.input) == 1
    assert {k: len(v) for k, v in boundary_layers(fp32).items()} == {"stem": 2, "classifier": 2}
    assert (out / "model.onnx").stat().st_size < 1.1 * sum(p.numel() * 4 for p in plain.parameters())


def test_runtime_runs_the_tta_model_unchanged_with_calibrated_scores(tta, folders):
    out, _, ckpt_path, _ = tta
    ckpt = load_checkpoint(ckpt_path)
    par, _ = set_a(folders, ckpt["spec"])
    x = preprocess_batch(list(par.images), ckpt["spec"])
    logits = run_onnx(onnx.load(str(out / "model.onnx")), x)
    want = softmax_t(logits, T)
    for name in ("onnx", "int8", "baked"):
        clf = Classifier.from_file(out / FORMATS[name].filename, provider="cpu")
        assert clf.temperature == T
        preds = [clf.predict(p) for p in par.paths]
        got = np.array([[p.probs[c] for c in CLASSES] for p in preds])
        tol = 0.05 if name == "int8" else 1e-5
        np.testing.assert_allclose(got, want, atol=tol, rtol=0, err_msg=name)
    assert np.max(np.abs(softmax_t(logits, 1.0) - want)) > 1e-2  # the temperature visibly changes the scores


def test_parity_is_reported_and_gated_per_set_with_intervals_and_ece(tta, folders):
    out, report, _, opts = tta
    assert report.passed and report.published
    data = json.loads((out / "export-report.json").read_text())
    assert [s["name"] for s in data["parity_sets"]] == [str(folders["a"]), str(folders["b"])]
    assert [s["labels"] for s in data["parity_sets"]] == ["file names (--labels-from-names)", "class folders"]
    md = (out / "export-report.md").read_text()
    par, labels = set_a(folders, par_spec(out))
    onnx_logits = run_onnx(onnx.load(str(out / "model.onnx")), preprocess_batch(list(par.images), par_spec(out)))
    for s in data["parity_sets"]:
        assert s["passed"] and s["images"] == 4 and f"## Parity on `{s['name']}`: PASS" in md
        assert [a["name"] for a in s["artifacts"]] == artifact_names(opts)  # every artifact built, in table order
        acc = s["eager_accuracy"]
        assert set(acc) >= {"accuracy", "ci95_low", "ci95_high", "correct", "n"} and acc["n"] == 4
        assert acc["ci95_low"] < acc["accuracy"] < acc["ci95_high"] or acc["accuracy"] in (0.0, 1.0)
        assert f"eager PyTorch accuracy {format_accuracy(acc['correct'], 4)}" in md
        for a in s["artifacts"]:
            assert a["parity_set"] == s["name"] and a["accuracy"]["n"] == 4 and a["gates"]
            assert format_accuracy(a["accuracy"]["correct"], 4) in md
        by = {a["name"]: a for a in s["artifacts"]}
        # the ECE columns are the ONNX scores' own, at T=1 and at the stored temperature
        assert by["onnx"]["ece"] == pytest.approx(ece(softmax_t(onnx_logits, 1.0), labels), abs=1e-6)
        assert by["onnx"]["ece_calibrated"] == pytest.approx(ece(softmax_t(onnx_logits, T), labels), abs=1e-6)
        assert by["onnx"]["ece"] != pytest.approx(by["onnx"]["ece_calibrated"], abs=1e-3)
    assert f"| ECE T=1 | ECE T={T:g} |" in md


def par_spec(out: Path):
    return read_onnx_metadata(out / "model.onnx").spec


def test_int8_choices_are_made_on_held_out_calibration_images(tta, folders):
    out, report, _, opts = tta
    choice = report.details["int8_choice"]
    calib = load_images(folders["calib"], opts.calib_count)
    parity = [p for f in (folders["a"], folders["b"]) for p in load_images(f, 100, CLASSES, from_names=True).paths]
    held = held_out(folders["calib"], opts.select_count, [*calib.paths, *parity])
    assert choice["held_out"] == len(held.paths) == 3  # 8 calibration-folder photos, 5 used to calibrate
    assert not {p.name for p in held.paths} & {p.name for p in [*calib.paths, *parity]}
    cands = choice["candidates"]
    assert [(c["method"], c["keep_fp32"]) for c in cands] == [(m, k) for m in ("minmax", "percentile")
                                                             for k in KEEP_FP32]
    best = min(cands, key=lambda c: (-c["agree"], c["max_abs_prob"]))
    assert (choice["method"], choice["keep_fp32"]) == (best["method"], best["keep_fp32"])
    assert report.details["int8"]["calib_method"] == choice["method"]
    md = (out / "export-report.md").read_text()
    assert "chosen on 3 held-out calibration images, not on the parity sets" in md
    assert md.count("| chosen |") == 1 and len([line for line in md.splitlines() if "| minmax |" in line]) == 3
    # the published INT8 graph keeps exactly the chosen layers in fp32 (both passes of each)
    model = onnx.load(str(out / "model.int8.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    kept = KEEP_FP32[choice["keep_fp32"]]
    for part, names in boundary_layers(model).items():
        assert len(names) == 2, part
        for name in names:
            weight = nodes[name].input[1]
            fp32 = weight in inits and inits[weight].data_type == TensorProto.FLOAT
            assert fp32 == (part in kept), (part, name)


def test_a_given_calib_method_is_kept_and_only_the_fp32_layers_are_chosen(tta, folders):
    out, _, _, opts = tta
    fp32 = onnx.load(str(out / "model.onnx"))
    spec = par_spec(out)
    calib = load_images(folders["calib"], opts.calib_count)
    held = held_out(folders["calib"], 10, calib.paths)
    with Int8Quantizer(fp32, preprocess_batch(list(calib.images), spec)) as q:
        _, choice = choose_int8(q, fp32, preprocess_batch(list(held.images), spec), "percentile")
    assert {c.method for c in choice.candidates} == {"percentile"} and len(choice.candidates) == len(KEEP_FP32)
    assert choice.method == "percentile" and choice.how.startswith("--calib-method percentile given")


def test_a_gate_failing_on_one_set_fails_the_export(ckpt_factory, photo_dir, folders, tmp_path, capfd):
    """Gates must pass on every set: the accuracy gate is n/a on the unlabelled set (Kaggle names
    without --labels-from-names) and fails on the class-folder set, so the export fails, naming it."""
    out = tmp_path / "out"
    code = cli("--ckpt", ckpt_factory(ARCH), "--out", out, "--int8", "--calib", photo_dir, "--no-int8-select",
               "--parity", photo_dir, "--parity", folders["b"], "--gate", "int8.acc_drop=-1", "--latency-runs", "1")
    err = capfd.readouterr().err.strip().splitlines()
    assert code == GateError.exit_code and len(err) == 1
    assert f"(gate int8.acc_drop) on {folders['b']}; nothing published" in err[0]
    report = json.loads((out / "export-report.json").read_text())
    assert [s["passed"] for s in report["parity_sets"]] == [True, False] and not report["published"]
    unlabelled = {a["name"]: a for a in report["parity_sets"][0]["artifacts"]}["int8"]
    assert unlabelled["accuracy"] is None and [g["passed"] for g in unlabelled["gates"]] == [True, None]
    assert {a["name"]: a["passed"] for a in report["artifacts"]} == {"torchscript": True, "onnx": True, "int8": False}
    assert report["details"]["int8_choice"]["how"].startswith("nothing chosen (--no-int8-select)")
    assert sorted(p.name for p in out.iterdir()) == ["export-report.json", "export-report.md"]
