"""Parity on several sets and INT8's choices, on one export of a calibrated efficientnet_lite0 with
two parity sets (real photos, real ONNX Runtime sessions; the export is tests/export/conftest.py's
`tta`): parity is reported and gated per set with Wilson intervals and ECE, a gate failing on one
set fails the export, and INT8's choices are made on held-out calibration images, never on the
parity sets."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto
from testkit.export import CLASSES, cli, par_spec, set_a
from testkit.export import TTA_ARCH as ARCH
from testkit.export import TTA_T as T

from catdog.export.builders.simplify import run_onnx
from catdog.export.int8.int8_choice import choose_int8
from catdog.export.int8.quantize import KEEP_FP32, Int8Quantizer, boundary_layers
from catdog.export.pipeline import artifact_names
from catdog.export.verify.images import held_out, load_images
from catdog.runtime.spine.errors import GateError
from catdog.runtime.spine.metrics import ece, format_accuracy, softmax_t
from catdog.runtime.spine.preprocess import preprocess_batch


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
