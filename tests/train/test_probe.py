"""Training with a linear probe, and what comes with it: the probe as a checkpoint that exports
and runs, LP-FT starting from the probe's head, EMA weights being what is saved, MixUp/CutMix
batches, augmentation policies, stratified disjoint CV folds, and the temperature fitted on
validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from catdog.runtime.spine.folders import LabelledFolder, scan
from catdog.runtime.spine.metrics import softmax_t
from catdog.train.data.datasets import ImageDataset, batch_mixer, train_transform
from catdog.train.loop.probe import fit_logistic
from catdog.train.models import get_entry
from catdog.train.models.checkpoint import build_model, load_checkpoint
from catdog.train.studies.cv import stratified_folds

LITE = ["--arch", "efficientnet_lite0", "--size", "64", "--batch-size", "4", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def probe_run(train_cli, small_flat, tmp_path_factory):
    run = tmp_path_factory.mktemp("probe") / "run"
    r = train_cli("probe", "--data", str(small_flat), *LITE, "--out", str(run))
    assert r.returncode == 0, r.stderr
    return run, json.loads(r.stdout.strip().splitlines()[-1])


def test_probe_is_an_ordinary_checkpoint_that_exports_and_runs(probe_run, small_flat, tmp_path):
    run, summary = probe_run
    ck = load_checkpoint(run / "best.pth")
    assert ck.epoch == 0 and summary["best_val_acc"] == ck.probe["val_acc"] == summary["probe_val_acc"]
    cal = ck.calibration
    assert ck.temperature == summary["temperature"] == cal["temperature"] and cal["ece_bins"] == 15
    if cal["val_errors"] == 0:  # a perfectly separated split has no finite optimum: left uncalibrated
        assert ck.temperature == 1.0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0] and rows[0]["val_acc"] == rows[0]["probe_val_acc"]

    # A temperature this split could not fit, set by hand: it must reach the runtime's scores.
    from catdog.train.models.checkpoint import save_checkpoint

    ck = load_checkpoint(save_checkpoint(tmp_path / "hot.pth", **{**ck.fields_to_save(), "temperature": 2.5}))
    out = tmp_path / "export"
    from testkit.export import cli as export_cli  # catdog-export in-process (its real processes: tests/export)

    assert export_cli("--ckpt", tmp_path / "hot.pth", "--out", out, "--calib", small_flat, "--latency-runs", "2") == 0
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.spine.preprocess import preprocess

    clf = Classifier.from_file(out / "model.onnx", provider="cpu")
    assert clf.temperature == pytest.approx(ck.temperature)  # calibrated scores travel in the metadata
    model = build_model(ck).eval()
    photos = sorted(small_flat.glob("*.jpg"))
    from catdog.runtime.spine.images import read_image

    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(preprocess(read_image(p), ck.spec))) for p in photos])
    want = softmax_t(logits.numpy(), ck.temperature)
    got = np.array([[p.probs[c] for c in ck.classes] for p in clf.predict_batch(photos)])
    assert np.abs(got - want).max() < 1e-4 and (got.argmax(1) == want.argmax(1)).all()


def test_lp_ft_starts_from_the_probe_head(probe_run, train_cli, train_main, small_flat, tmp_path):
    """With lr 0 the fine-tuning moves nothing, so the saved head is exactly where LP-FT started.
    The probe case runs in a fresh process, as probe_run did: bit-equal heads need the same float
    sums, which a fresh process guarantees whatever this process's earlier tests set (torch threads)."""
    run, _ = probe_run
    probe_fc = load_checkpoint(run / "best.pth").state_dict["fc.weight"]
    for head, same, train in (("probe", True, train_cli), ("random", False, train_main)):
        out = tmp_path / head
        r = train("--data", str(small_flat), *LITE, "--pretrained", "--head", head, "--epochs", "1", "--lr", "0",
                  "--out", str(out))
        assert r.returncode == 0, r.stderr
        fc = load_checkpoint(out / "best.pth").state_dict["fc.weight"]
        assert torch.equal(fc, probe_fc) is same, head
        assert json.loads(r.stdout.strip().splitlines()[-1])["probe_val_acc"] is not None  # the bar is reported


def test_ema_weights_are_what_gets_saved(train_main, small_flat, tmp_path):
    out = tmp_path / "ema"
    r = train_main("--data", str(small_flat), *LITE, "--pretrained", "--no-probe", "--ema", "0.5", "--epochs", "1",
                  "--lr", "1e-3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    best, last = load_checkpoint(out / "best.pth"), load_checkpoint(out / "last.pth")
    ema = {k.removeprefix("module."): v for k, v in last.ema.items() if k.startswith("module.")}
    assert set(ema) == set(best.state_dict)
    assert all(torch.equal(ema[k], best.state_dict[k]) for k in ema)  # best.pth holds the EMA...
    assert not all(torch.equal(last.state_dict[k], best.state_dict[k]) for k in ema)  # ...not the raw weights


def test_mixup_and_cutmix_batches(small_flat):
    data = scan(small_flat)
    ds = ImageDataset(data, get_entry("efficientnet_lite0").spec.at_size(64), train=False)
    x = torch.stack([ds[i][0] for i in range(8)])
    y = torch.tensor([ds[i][1] for i in range(8)])
    assert batch_mixer(2, mixup=0.0, cutmix=0.0) is None
    torch.manual_seed(0)
    for kind in ({"mixup": 0.4, "cutmix": 0.0}, {"mixup": 0.0, "cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}):
        mx, my = batch_mixer(2, **kind)(x, y)
        assert mx.shape == x.shape and my.shape == (8, 2)
        assert torch.allclose(my.sum(1), torch.ones(8)) and ((my > 0) & (my < 1)).any(), kind  # soft labels
        assert not torch.equal(mx, x), kind
    mx, _ = batch_mixer(2, mixup=0.0, cutmix=1.0)(x, y)
    same = (mx == x).all(1)  # CutMix pastes a box: each image is partly itself, partly another
    assert same.any() and (~same).any()


@pytest.mark.parametrize("augment", ["seed", "trivial", "randaugment"])
def test_augment_policies(augment):
    spec = get_entry("efficientnet_lite0").spec.at_size(64)
    img = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8)
    assert train_transform(spec, augment)(img).shape == (3, 64, 64)


def test_cv_folds_are_disjoint_stratified_and_reproducible(tmp_path):
    samples = tuple((f"/d/{c}.{i}.jpg", y) for y, c in enumerate(("cat", "dog", "fox")) for i in range(17 + 5 * y))
    data = LabelledFolder(tmp_path, "flat", ("cat", "dog", "fox"), samples)
    folds = stratified_folds(data, 5, seed=1)
    vals = [set(v.samples) for _, v in folds]
    assert set().union(*vals) == set(samples) and sum(map(len, vals)) == len(samples)  # disjoint, complete
    for train, val in folds:
        assert not set(train.samples) & set(val.samples) and len(train.samples) + len(val.samples) == len(samples)
        for y, n in enumerate((17, 22, 27)):
            assert abs(sum(1 for _, c in val.samples if c == y) - n / 5) < 1  # each class split evenly
    assert [f[1].samples for f in folds] == [f[1].samples for f in stratified_folds(data, 5, seed=1)]
    assert [f[1].samples for f in folds] != [f[1].samples for f in stratified_folds(data, 5, seed=2)]


def test_cv_cli_of_the_probe_recipe(train_main, small_flat, tmp_path):
    out = tmp_path / "cv"
    r = train_main("cv", "--folds", "3", "--data", str(small_flat), *LITE, "--pretrained", "--head", "probe",
                  "--epochs", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "cv.json").read_text())
    assert [f["fold"] for f in report["per_fold"]] == [1, 2, 3]
    assert sum(f["val_images"] for f in report["per_fold"]) == 12
    assert report["val_acc_mean"] == pytest.approx(np.mean([f["val_acc"] for f in report["per_fold"]]))
    assert "n=12)" in report["pooled"] and "\u00b1" in r.stderr


def test_logistic_regression_separates_and_maps_back_to_raw_features():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (50, 4)), rng.normal(3, 1, (50, 4))]) * [1, 10, 100, 1000]
    y = np.repeat([0, 1], 50)
    w, b = fit_logistic(x, y, 2, l2=0.01)
    assert w.shape == (2, 4) and ((x @ w.T + b).argmax(1) == y).mean() > 0.95  # raw features, no scaling step


def test_freeze_bn_keeps_the_pretrained_statistics(train_main, small_flat, tmp_path):
    from catdog.train.models.efficientnet_lite import imagenet_state_dict

    imagenet = imagenet_state_dict("efficientnet_lite0")
    for frozen in (True, False):
        out = tmp_path / f"bn-{frozen}"
        flag = "--freeze-bn" if frozen else "--no-freeze-bn"
        r = train_main("--data", str(small_flat), *LITE, "--pretrained", "--no-probe", flag, "--epochs", "1",
                      "--lr", "1e-3", "--out", str(out))
        assert r.returncode == 0, r.stderr
        sd = load_checkpoint(out / "best.pth").state_dict
        stats = [k for k in sd if k.endswith(("running_mean", "running_var"))]
        assert all(torch.equal(sd[k], imagenet[k]) for k in stats) is frozen
        assert not torch.equal(sd["conv_head.weight"], imagenet["conv_head.weight"])  # the weights did train
