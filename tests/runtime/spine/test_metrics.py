"""Honest numbers: Wilson intervals against published values, ECE, temperature fitting, the
temperature travelling in ONNX metadata, `--unsure-below`, and accuracy in the runtime summary."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from testkit.runtime import SPEC, build_model, meta, run_cli

from catdog.runtime.engine.classifier import UNSURE, Classifier
from catdog.runtime.spine.metadata import METADATA_KEY, ModelMetadata, from_metadata_map
from catdog.runtime.spine.metrics import ece, fit_temperature, format_accuracy, nll, softmax_t, wilson


@pytest.mark.parametrize("k, n, lo, hi", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I (Wilson).
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
])
def test_wilson_matches_published_values(k, n, lo, hi):
    assert wilson(k, n) == pytest.approx((lo, hi), abs=5e-5)


def test_format_accuracy():
    assert format_accuracy(397, 400) == "99.25% (97.8\u201399.7, n=400)"
    assert format_accuracy(0, 0) == "n/a (n=0)"


def test_ece_of_known_cases():
    labels = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert ece(perfect, labels) == 0.0
    # every answer 0.9 sure and half of them wrong: |0.5 - 0.9| in the one occupied bin
    overconfident = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.9, 0.1]])
    assert ece(overconfident, labels) == pytest.approx(0.4)


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (20000, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax_t(logits, 2.5)])
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert ece(softmax_t(logits, t), labels) < ece(softmax_t(logits, 1.0), labels)


def test_temperature_round_trips_through_onnx_and_changes_scores_not_labels(tmp_path, photos):
    plain = build_model(tmp_path / "plain.onnx", metadata=meta())
    hot = build_model(tmp_path / "hot.onnx", metadata=meta(temperature=3.0))
    import onnx

    props = {p.key: p.value for p in onnx.load(str(hot)).metadata_props}
    assert from_metadata_map(props).temperature == 3.0 and json.loads(props[METADATA_KEY])["schema_version"] == 2
    a, b = Classifier.from_file(plain, provider="cpu"), Classifier.from_file(hot, provider="cpu")
    pa, pb = a.predict_batch(photos), b.predict_batch(photos)
    assert [p.label for p in pa] == [p.label for p in pb]
    for x, y in zip(pa, pb, strict=True):
        logit_gap = np.log(x.score / (1 - x.score))  # two classes: the score is sigmoid(logit gap)
        assert y.score == pytest.approx(1 / (1 + np.exp(-logit_gap / 3.0)), rel=1e-4)
        assert abs(y.score - 0.5) < abs(x.score - 0.5)


def test_schema_1_metadata_loads_with_temperature_1():
    old = ModelMetadata(classes=("cat", "dog"), spec=SPEC, arch="tiny").to_dict()
    del old["temperature"]
    old["schema_version"] = 1
    assert ModelMetadata.from_dict(old).temperature == 1.0
    with pytest.raises(Exception, match="temperature must be a number"):
        ModelMetadata(classes=("cat", "dog"), spec=SPEC, arch="tiny", temperature=0.0)


def test_unsure_below(models, photos, tmp_path):
    clf = Classifier.from_file(models["float"], provider="cpu")
    scores = sorted(p.score for p in clf.predict_batch(photos))
    cut = (scores[2] + scores[3]) / 2  # half the photos fall under it
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in photos:
        shutil.copy(p, folder)
    r = run_cli(folder, "--model", models["float"], "--json", "--unsure-below", str(cut))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["label"] == UNSURE for x in rows] == [x["score"] < cut for x in rows]
    assert sum(x["label"] == UNSURE for x in rows) == 3
    assert all(x["label"] in ("cat", "dog") for x in rows if x["score"] >= cut)
    r = run_cli(photos[0], "--model", models["float"], "--unsure-below", "1.5")
    assert r.returncode == 2 and "Invalid value for '--unsure-below'" in r.stderr


def test_summary_reports_accuracy_when_names_carry_labels(models, photos, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in photos:
        shutil.copy(p, flat)
    clf = Classifier.from_file(models["float"], provider="cpu")
    right = sum(p.label == src.name.split(".")[0] for p, src in zip(clf.predict_batch(photos), photos, strict=True))
    r = run_cli(flat, "--model", models["float"])
    assert r.returncode == 0, r.stderr
    assert f"accuracy      {format_accuracy(right, 6)}, labels from file/folder names" in r.stderr
    (flat / "holiday.jpg").write_bytes(photos[0].read_bytes())  # one unlabelled photo: no accuracy line
    r = run_cli(flat, "--model", models["float"])
    assert r.returncode == 0 and "accuracy" not in r.stderr, r.stderr
