"""The gate failure path: a perturbed model or artifact fails its gate, the CLI exits non-zero
naming the artifact and the figure, and nothing unproved is published."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from testkit.export import check_artifact, cli

from catdog.export.artifacts.formats import FORMATS, all_gates, gate_overrides
from catdog.export.verify.parity import eager_logits
from catdog.runtime.spine.errors import GateError, InputError
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess_batch, resize_crop
from catdog.train.models.checkpoint import build_model, load_checkpoint

ARCH = "efficientnet_lite0"


@pytest.fixture(scope="module")
def lite(exported):
    return exported(ARCH)


@pytest.fixture(scope="module")
def parity_inputs(lite, photo_dir):
    _, _, ckpt_path = lite
    ckpt = load_checkpoint(ckpt_path)
    paths = sorted(photo_dir.iterdir())
    images = [read_image(p) for p in paths]
    inputs = {
        "float": preprocess_batch(images, ckpt.spec),
        "uint8": np.stack([resize_crop(im, ckpt.spec) for im in images]),
    }
    labels = np.array([("cat", "dog").index(p.name.split(".")[0]) for p in paths])
    return ckpt, inputs, labels


def test_tampered_onnx_initializer_fails_the_fp32_gate(lite, parity_inputs, tmp_path):
    out, _, _ = lite
    ckpt, inputs, labels = parity_inputs
    x = inputs["float"]
    model = onnx.load(str(out / "model.onnx"))
    big = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    big.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(big) * np.float32(1.001), big.name))  # +0.1 %
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    ref = eager_logits(build_model(ckpt), x)
    result = check_artifact(FORMATS["onnx"], path, ref, x, labels, {})
    assert not result.passed
    assert result.reasons[0].startswith("onnx: max_abs_logit") and "(gate onnx.logit)" in result.reasons[0]
    # The untouched artifact passes the same check: the failure is the tampering.
    assert check_artifact(FORMATS["onnx"], out / "model.onnx", ref, x, labels, {}).passed


def test_artifacts_checked_against_a_perturbed_checkpoint_fail(lite, parity_inputs):
    out, _, _ = lite
    ckpt, inputs, labels = parity_inputs
    model = build_model(ckpt)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 1e-3 * torch.randn_like(p))
    ref = eager_logits(model, inputs["float"])
    for name in ("torchscript", "onnx", "baked"):
        fmt = FORMATS[name]
        result = check_artifact(fmt, out / fmt.filename, ref, inputs[fmt.input_format], labels, {})
        assert not result.passed and result.reasons[0].startswith(f"{name}: max_abs_logit"), name


def test_fragile_int8_model_fails_cli_with_exit_3_and_publishes_nothing(ckpt_factory, photo_dir, tmp_path, capfd):
    """A 16-block net at random init (no pretrained weights), INT8-calibrated on a single photo
    (ranges the other photos overflow), changes answers: the export must refuse it, name the
    artifact and the figure, and leave no final-named model."""
    ckpt = ckpt_factory(ARCH, pretrained=False)
    out = tmp_path / "out"
    # --full-decode: every pixel of the photos, whose detail overflows the one photo's ranges (the
    # reduced decode's smoother small photos can fit them by luck).
    code = cli("--ckpt", ckpt, "--out", out, "--int8", "--calib", photo_dir, "--calib-count", "1",
               "--labels-from-names", "--latency-runs", "1", "--full-decode")
    err = capfd.readouterr().err.strip().splitlines()
    assert code == GateError.exit_code == 3
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "int8: top1_agreement" in err[0] and "(gate int8.agreement)" in err[0] and "nothing published" in err[0]
    # the report, and its grid of the photos whose answer INT8 changed (export/output/gallery.py): no model
    assert sorted(p.name for p in out.iterdir()) == ["export-report.json", "export-report.md",
                                                     "int8-disagreements-1.png"]
    report = json.loads((out / "export-report.json").read_text())
    assert not report["passed"] and not report["published"]
    assert {a["name"]: a["passed"] for a in report["artifacts"]} == {"torchscript": True, "onnx": True, "int8": False}


def test_allow_gate_failure_publishes_and_says_so(ckpt_factory, photo_dir, tmp_path, capfd):
    ckpt = ckpt_factory(ARCH, pretrained=False)
    out = tmp_path / "out"
    code = cli("--ckpt", ckpt, "--out", out, "--int8", "--calib", photo_dir, "--calib-count", "1",
               "--allow-gate-failure", "--latency-runs", "1", "--full-decode")
    assert code == 0
    assert (out / "model.int8.onnx").is_file() and (out / "model.onnx").is_file()
    assert "gates failed" in capfd.readouterr().err
    report = json.loads((out / "export-report.json").read_text())
    assert not report["passed"] and report["published"] and report["gate_failure_allowed"]


def test_gate_overrides_are_parsed_by_name():
    assert gate_overrides(["int8.agreement=0.97", "fp16.prob=0.02"]) == {"int8.agreement": 0.97, "fp16.prob": 0.02}
    with pytest.raises(InputError, match="known: .*int8.agreement"):
        gate_overrides(["int8.agrement=0.97"])
    with pytest.raises(InputError, match="NAME=VALUE"):
        gate_overrides(["int8.agreement"])
    with pytest.raises(InputError, match="not a number"):
        gate_overrides(["int8.agreement=high"])


def test_default_gates_and_their_limits():
    gates = {n: (g.metric, g.op, g.limit) for n, g in all_gates().items()}
    assert gates == {
        "torchscript.logit": ("max_abs_logit", "<=", 1e-5),
        "onnx.logit": ("max_abs_logit", "<=", 1e-4),
        "int8.agreement": ("top1_agreement", ">=", 0.99),
        "int8.acc_drop": ("accuracy_drop", "<=", 0.005),
        "int8-trt.agreement": ("top1_agreement", ">=", 0.99),  # the same gates as the CPU INT8
        "int8-trt.acc_drop": ("accuracy_drop", "<=", 0.005),
        "fp16.prob": ("max_abs_prob", "<=", 1e-2),
        "baked.logit": ("max_abs_logit", "<=", 1e-4),
    }
