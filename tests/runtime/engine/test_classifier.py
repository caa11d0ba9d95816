"""The Python API on real ONNX sessions and real JPEG decoding, checked against a numpy reference
of the same network."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from testkit.runtime import SPEC, build_model, meta, reference_logits, softmax, weights

from catdog.runtime.engine.classifier import Classifier, Prediction
from catdog.runtime.engine.session import AUTO_ORDER, INSTALL_HINTS, PROVIDERS, available_providers, open_session
from catdog.runtime.spine.errors import InputError, MetadataError, ModelError, ProviderError
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.labels import load_labels
from catdog.runtime.spine.preprocess import preprocess
from catdog.runtime.spine.records import Failure


def expected_probs(path, spec=SPEC, classes=2):
    return softmax(reference_logits(preprocess(read_image(path, spec), spec), weights(classes)))[0]


def test_predict_real_photos_matches_numpy_reference(models, photos):
    clf = Classifier.from_file(models["float"], provider="cpu")
    assert clf.classes == ("cat", "dog") and clf.metadata.arch == "tiny"
    for path in photos:
        pred = clf.predict(path)
        want = expected_probs(path)
        assert isinstance(pred, Prediction)
        assert set(pred.probs) == {"cat", "dog"}
        np.testing.assert_allclose([pred.probs["cat"], pred.probs["dog"]], want, atol=1e-5)
        assert pred.index == int(np.argmax(want)) and pred.label == clf.classes[pred.index]
        assert pred.score == pytest.approx(want.max(), abs=1e-5)


def test_predict_accepts_decoded_array_and_batch_equals_single(models, photos):
    clf = Classifier.from_file(models["float"], provider="cpu", batch_size=4)
    singles = [clf.predict(read_image(p, clf.spec)) for p in photos]  # decoded as the spine does
    batch = clf.predict_batch([str(p) for p in photos])  # 6 images in batches of 4 + 2
    for a, b in zip(singles, batch, strict=True):
        assert a.label == b.label
        assert a.probs == pytest.approx(b.probs, abs=1e-6)


def test_metadata_drives_class_names(tmp_path, photos):
    path = build_model(tmp_path / "m.onnx", classes=3, metadata=meta(classes=("ant", "bee", "wasp")))
    pred = Classifier.from_file(path, provider="cpu").predict(photos[0])
    assert set(pred.probs) == {"ant", "bee", "wasp"} and pred.label in pred.probs
    assert sum(pred.probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_baked_uint8_model_gives_same_answers_as_float(models, photos):
    flt = Classifier.from_file(models["float"], provider="cpu")
    baked = Classifier.from_file(models["uint8"], provider="cpu")
    assert baked.baked and baked.session.input_dtype == np.uint8
    for a, b in zip(flt.predict_batch(photos), baked.predict_batch(photos), strict=True):
        assert a.label == b.label
        assert a.probs == pytest.approx(b.probs, abs=1e-4)


def test_probability_outputs_are_not_softmaxed_twice(models, photos):
    logits = Classifier.from_file(models["float"], provider="cpu").predict_batch(photos)
    with_meta = Classifier.from_file(models["probs"], provider="cpu").predict_batch(photos)  # metadata: "probs"
    detected = Classifier.from_file(models["softmax_nometa"], labels=["cat", "dog"], spec=SPEC,
                                    provider="cpu").predict_batch(photos)
    for a, b, c in zip(logits, with_meta, detected, strict=True):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)
        assert a.probs == pytest.approx(c.probs, abs=1e-5)


def test_third_party_model_with_labels_and_flags(imagenet_model, data_dir, dog_jpg):
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    clf = Classifier.from_file(imagenet_model, labels=data_dir / "imagenet_classes.txt",
                               spec={"mean": mean, "std": std}, provider="cpu")
    assert clf.spec.size == 48 and clf.spec.mean == mean and clf.spec.std == std  # size from the graph
    pred = clf.predict(dog_jpg)
    assert pred.label == "Samoyed" and pred.index == 258 and len(pred.probs) == 1000
    # The flags really reach the preprocessing: the probabilities follow the given mean/std.
    w = weights(1000)
    w["fc_b"] = np.zeros(1000, np.float32)
    w["fc_b"][258] = 50.0
    x = preprocess(read_image(dog_jpg), clf.spec)
    want = softmax(reference_logits(x, w))[0]
    got = np.array(list(pred.probs.values()))
    np.testing.assert_allclose(got[np.argsort(want)[-5:]], np.sort(want)[-5:], rtol=1e-4, atol=1e-7)


def test_labels_file_formats(tmp_path):
    (tmp_path / "a.txt").write_text("cat\ndog\n")
    (tmp_path / "b.csv").write_text("idx,name\n1,dog\n0,cat\n")
    (tmp_path / "c.json").write_text(json.dumps(["cat", "dog"]))
    (tmp_path / "d.json").write_text(json.dumps({"1": "dog", "0": "cat"}))
    for name in ("a.txt", "b.csv", "c.json", "d.json"):
        assert load_labels(tmp_path / name) == ("cat", "dog"), name
    (tmp_path / "gap.csv").write_text("0,cat\n2,dog\n")
    with pytest.raises(InputError, match="gap.csv: class indices must run 0..N-1"):
        load_labels(tmp_path / "gap.csv")
    (tmp_path / "dup.txt").write_text("crane\nbird\ncrane\n")
    assert load_labels(tmp_path / "dup.txt") == ("crane", "bird", "crane (2)")


def test_model_without_metadata_or_labels_says_pass_labels(models):
    with pytest.raises(ModelError, match=r"tiny_nometa.onnx: has no catdog-edge metadata.*--labels"):
        Classifier.from_file(models["nometa"], provider="cpu")


def test_class_count_mismatch_is_explained(models, tmp_path):
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(ModelError, match=r"outputs 2 scores per image but --labels .*three.txt names 3 classes"):
        Classifier.from_file(models["nometa"], labels=tmp_path / "three.txt", provider="cpu")


def test_wrong_input_rank_and_size(tmp_path):
    rank2 = build_model(tmp_path / "rank2.onnx", metadata=meta(), rank2=True)
    with pytest.raises(ModelError, match=r"rank2.onnx: input 'input' has rank 2"):
        Classifier.from_file(rank2, provider="cpu")
    big = build_model(tmp_path / "s64.onnx", metadata=meta(), size=64)
    with pytest.raises(ModelError, match=r"s64.onnx: the model input is 64x64 but the preprocessing size is 32"):
        Classifier.from_file(big, provider="cpu")


def test_newer_schema_is_refused_with_upgrade_hint(tmp_path):
    newer = dict(meta().to_dict(), schema_version=3)
    path = build_model(tmp_path / "new.onnx", metadata=newer)
    with pytest.raises(MetadataError, match=r"new.onnx was exported by a newer catdog-edge \(schema 3"):
        Classifier.from_file(path, provider="cpu")


def test_broken_model_files_name_the_file(tmp_path, models):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    data = models["float"].read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(data[: len(data) // 2])
    for path in (text, trunc):
        with pytest.raises(ModelError, match=f"{path.name}: not a valid ONNX model"):
            Classifier.from_file(path, provider="cpu")
    with pytest.raises(ModelError, match="missing.onnx: no such model file"):
        Classifier.from_file(tmp_path / "missing.onnx", provider="cpu")


def test_provider_auto_and_explicit_missing_providers(models, tmp_path):
    """auto takes the first provider of TensorRT > CUDA > CPU that runs (CPU without a GPU build);
    a provider this onnxruntime build lacks is an error naming what to install. Whichever build
    the suite runs with (onnxruntime or onnxruntime-gpu, GPU or not): every provider it lacks."""
    have = available_providers()
    assert "cpu" in have
    sess = open_session(models["float"], provider="auto", log=None, trt_cache_dir=tmp_path / "trt")
    assert sess.provider in AUTO_ORDER and sess.provider in have
    assert sess.ort.get_providers()[0] == PROVIDERS[sess.provider]
    if not {"cuda", "tensorrt"} & set(have):
        assert sess.provider == "cpu"
    missing = [p for p in PROVIDERS if p not in have]
    assert missing  # no onnxruntime build carries every provider (CoreML is macOS-only, DirectML Windows-only)
    for name in missing:
        hint = re.escape(f"install: {INSTALL_HINTS[name]}")
        with pytest.raises(ProviderError, match=f"provider {name} is not available in this onnxruntime build.*{hint}"):
            open_session(models["float"], provider=name, log=None)
    with pytest.raises(ProviderError, match="unknown provider 'gpu'; known: auto, cpu, cuda, tensorrt"):
        open_session(models["float"], provider="gpu", log=None)


def test_spin_wait_is_off_only_when_asked(models, photos):
    """Folder runs turn ORT's spin-wait off (the decode threads need the cores), other runs spin only
    inside run(); answers are the same."""
    key = "session.intra_op.allow_spinning"
    default = open_session(models["float"], provider="cpu", log=None)
    quiet = open_session(models["float"], provider="cpu", log=None, spinning=False)
    assert quiet.ort.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # ORT's default: spin
        default.ort.get_session_options().get_session_config_entry(key)
    # ...while a run lasts: the pool stops spinning when run() returns, freeing the cores between runs
    stop = "session.force_spinning_stop"
    assert default.ort.get_session_options().get_session_config_entry(stop) == "1"
    x = np.concatenate([preprocess(read_image(p), SPEC) for p in photos[:3]])
    np.testing.assert_array_equal(default.run(x), quiet.run(x))


def test_fixed_batch_one_model_runs_folders_one_by_one(models, photos):
    clf = Classifier.from_file(models["batch1"], batch_size=16, provider="cpu")
    assert clf.batch_size == 1
    results = list(clf.iter_predict(photos))
    assert [s for s, _ in results] == [str(p) for p in photos]
    assert all(isinstance(r, Prediction) for _, r in results)


def test_iter_predict_keeps_order_and_reports_bad_files(models, photos, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    sources = [photos[0], bad, photos[1], photos[2]]
    clf = Classifier.from_file(models["float"], batch_size=2, workers=2, provider="cpu")
    out = list(clf.iter_predict(sources))
    assert [s for s, _ in out] == [str(p) for p in sources]
    fail = out[1][1]  # a Failure that keeps its kind and its source, its message naming the file
    assert isinstance(fail, Failure) and fail.kind == "input" and fail.source == str(bad)
    assert fail.message.startswith(str(bad)) and "bad.jpg: empty file" in fail.message
    assert all(isinstance(r, Prediction) for i, (_, r) in enumerate(out) if i != 1)
    assert clf.times.items == 3 and clf.times.failed == 1
    with pytest.raises(InputError, match="bad.jpg: empty file"):
        clf.predict(bad)
