"""The calibration temperature and --tta-flip through one export of a calibrated efficientnet_lite0
(real photos, real ONNX Runtime sessions; the export is tests/export/conftest.py's `tta`): the
checkpoint's temperature and calibration record reach every artifact; --tta-flip averages the photo
and its mirror image inside every graph, and the runtime runs it as is, with calibrated scores."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from testkit.export import CLASSES, set_a
from testkit.export import TTA_CALIBRATION as CALIBRATION
from testkit.export import TTA_T as T

from catdog.export.artifacts.formats import FORMATS
from catdog.export.builders.meta import read_onnx_metadata
from catdog.export.builders.simplify import run_onnx
from catdog.export.builders.torchscript import load_torchscript
from catdog.export.int8.quantize import boundary_layers
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.spine.metrics import softmax_t
from catdog.runtime.spine.preprocess import preprocess_batch, resize_crop
from catdog.train.models.checkpoint import build_model, load_checkpoint


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
    par, _ = set_a(folders, ckpt.spec)
    x = preprocess_batch(list(par.images), ckpt.spec)
    with torch.no_grad():
        once, mirrored = plain(torch.from_numpy(x)).numpy(), plain(torch.from_numpy(x[..., ::-1].copy())).numpy()
    expected = (once + mirrored) / 2
    assert np.max(np.abs(once - mirrored)) > 1e-2  # the mirror image is another input: TTA changes logits
    crops = np.stack([resize_crop(im, ckpt.spec) for im in par.images])
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
    par, _ = set_a(folders, ckpt.spec)
    x = preprocess_batch(list(par.images), ckpt.spec)
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
