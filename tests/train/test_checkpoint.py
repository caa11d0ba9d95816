"""Checkpoints are data, never code: weights_only loading, refusal of pickled objects, and clear
errors for files that do not fit."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import replace

import pytest
import torch

from catdog.runtime.spine.errors import CheckpointError, DataError
from catdog.runtime.spine.fileio import file_sha256
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.loop.evaluate import evaluate_checkpoint
from catdog.train.models import get_entry, get_model
from catdog.train.models.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def tiny_ckpt(path, classes=("cat", "dog"), **extra):
    model = get_model("mobilenet_v3_small", len(classes))
    spec = get_entry("mobilenet_v3_small").spec.with_(size=32, resize=32)
    return save_checkpoint(path, arch="mobilenet_v3_small", arch_kwargs={}, classes=list(classes), spec=spec,
                           state_dict=model.state_dict(), train_config={}, metrics={"val_acc": 0.5}, epoch=1, **extra)


def test_round_trip_weights_only(tmp_path):
    p = tiny_ckpt(tmp_path / "c.pth")
    raw = torch.load(p, weights_only=True)
    assert raw["versions"]["torch"] == str(torch.__version__) and type(raw["versions"]["torch"]) is str
    ck = load_checkpoint(p)
    assert ck.spec.size == 32 and ck.classes == ("cat", "dog")
    assert not build_model(ck).training


def test_pickled_code_is_refused_never_run(tmp_path):
    marker = tmp_path / "code_ran"
    for i, payload in enumerate([Payload(marker), {"format": "catdog-checkpoint", "arch": Payload(marker)}]):
        path = tmp_path / f"evil{i}.pth"
        torch.save(payload, path)
        with pytest.raises(CheckpointError, match="refused: the file carries pickled code"):
            load_checkpoint(path)
    assert not marker.exists()


def test_pickled_code_refused_as_weights_too(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"fc.weight": Payload(marker)}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="not a safe state_dict"):
        get_model("resnet18", 2, weights=str(tmp_path / "w.pth"))
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path):
    p = tiny_ckpt(tmp_path / "c.pth")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)
    torch.save(get_model("resnet18", 2).state_dict(), tmp_path / "sd.pth")
    with pytest.raises(CheckpointError, match="bare state_dict.*--weights"):
        load_checkpoint(tmp_path / "sd.pth")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")  # torch's error for this mentions weights_only
    with pytest.raises(CheckpointError, match="notes.txt: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")


def test_checkpoint_of_another_arch(tmp_path):
    p = tiny_ckpt(tmp_path / "c.pth")
    ck = replace(load_checkpoint(p), arch="resnet18")
    with pytest.raises(CheckpointError, match="do not match arch 'resnet18' with 2 classes"):
        build_model(ck, "c.pth")


def test_class_count_mismatch_with_val_data(tmp_path, small_folders, small_flat):
    p = tiny_ckpt(tmp_path / "c.pth")
    with pytest.raises(DataError, match="has 3 classes.*model has 2"):
        evaluate_checkpoint(p, [small_flat, small_folders], workers=0)  # refused before any work
    res = evaluate_checkpoint(p, [small_flat], workers=0)["sets"][str(small_flat)]
    assert res["images"] == 12 and 0.0 <= res["accuracy"] <= 1.0 and res["n"] == 12
    assert res["ci95_low"] <= res["accuracy"] <= res["ci95_high"]


def test_resume_with_other_classes_is_refused(tmp_path, small_flat, small_folders):
    from catdog.train.loop.fit import fit
    from catdog.train.recipe import TrainConfig

    run = tmp_path / "run"
    cfg = TrainConfig(data=str(small_flat), arch="mobilenet_v3_small", size=32, epochs=1, batch_size=4, workers=0)
    fit(cfg, run, plots=False)
    raw = torch.load(run / "last.pth", weights_only=True)
    raw["train_config"]["data"] = str(small_folders)  # the data folder changed under the run
    torch.save(raw, run / "last.pth")
    with pytest.raises(DataError, match="has 3 classes.*model has 2"):
        fit(TrainConfig(epochs=2), run, resume=True)


class SystemCall:
    """Unpickling this would run a shell command (the classic malicious pickle)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_random_bytes_are_not_a_checkpoint_and_raise_no_warning(tmp_path):
    """Bytes that start like a pickle (0x80) used to be called "pickled code", with torch's protocol warning."""
    import os
    import warnings

    for i, head in enumerate([b"\x80" + bytes([222]), b"\x80\x02", b"\x80\x02\x8a\x0a"]):
        junk = tmp_path / f"junk{i}.pth"
        junk.write_bytes(head + os.urandom(3000))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning torch.load lets out fails the test
            with pytest.raises(CheckpointError) as e:
                load_checkpoint(junk)
        assert str(e.value).startswith(f"{junk}: not a checkpoint: corrupt, truncated or not a PyTorch file ("), e.value


def test_a_pickle_calling_os_system_is_still_refused_as_code(tmp_path):
    import pickle

    marker = tmp_path / "code_ran"
    payload = {"format": "catdog-checkpoint", "arch": SystemCall(marker)}
    torch.save(payload, tmp_path / "zip.pth")
    (tmp_path / "legacy.pth").write_bytes(pickle.dumps(payload, protocol=2))  # starts with 0x80 too
    for name in ("zip.pth", "legacy.pth"):
        with pytest.raises(CheckpointError, match="refused: the file carries pickled code"):
            load_checkpoint(tmp_path / name)
    assert not marker.exists()


def test_num_classes_in_arch_kwargs(tmp_path):
    """It used to be "internal error: TypeError: get_model() got multiple values for argument 'num_classes'"."""
    ck = load_checkpoint(tiny_ckpt(tmp_path / "c.pth"))
    assert not build_model(replace(ck, arch_kwargs={"num_classes": 2}), "c.pth").training  # agrees: redundant
    with pytest.raises(CheckpointError) as e:
        build_model(replace(ck, arch_kwargs={"num_classes": 7}), "c.pth")
    assert str(e.value) == ("c.pth: arch_kwargs has num_classes=7 but the checkpoint lists 2 classes ['cat', 'dog']; "
                            "the two must agree: remove num_classes from arch_kwargs (the classes list sets the count)")
    with pytest.raises(CheckpointError, match="c.pth: arch_kwargs is a list, not a dict"):
        build_model(replace(ck, arch_kwargs=[7]), "c.pth")


def test_a_checkpoint_is_one_typed_record_read_once(tmp_path):
    """Every stage reads the same frozen record; its sha256 is the loaded bytes' (export stamps it)."""
    p = tiny_ckpt(tmp_path / "c.pth")
    ck = load_checkpoint(p)
    assert isinstance(ck, Checkpoint) and ck.path == p
    assert ck.sha256 == hashlib.sha256(p.read_bytes()).hexdigest() == file_sha256(p)
    assert (ck.arch, ck.epoch, ck.metrics, ck.train_config) == ("mobilenet_v3_small", 1, {"val_acc": 0.5}, {})
    assert isinstance(ck.spec, PreprocessSpec) and ck.format_version == 1 and ck.versions["torch"]
    assert ck.temperature == 1.0 and ck.calibration is None  # before calibration: plain softmax
    assert (ck.optimizer, ck.scheduler, ck.scaler, ck.ema, ck.run_state, ck.probe) == (None,) * 6  # not a last.pth
    with pytest.raises(dataclasses.FrozenInstanceError):
        ck.arch = "resnet18"


def test_a_resaved_record_loses_nothing_and_adds_nothing(tmp_path):
    p = tiny_ckpt(tmp_path / "c.pth", optimizer={"state": {}, "param_groups": []}, run_state={"best_acc": 0.5},
                  future_key={"from": "a newer writer"})
    ck = load_checkpoint(p)
    assert ck.optimizer == {"state": {}, "param_groups": []} and ck.run_state == {"best_acc": 0.5}
    assert ck.other == {"future_key": {"from": "a newer writer"}}  # a key this version does not name is kept
    again = load_checkpoint(save_checkpoint(tmp_path / "again.pth", **ck.fields_to_save()))
    same = ("arch", "arch_kwargs", "classes", "spec", "temperature", "epoch", "metrics", "train_config", "optimizer",
            "run_state", "other")
    assert all(getattr(again, f) == getattr(ck, f) for f in same)
    assert all(torch.equal(again.state_dict[k], v) for k, v in ck.state_dict.items())
    assert set(torch.load(again.path, weights_only=True)) == set(torch.load(p, weights_only=True))  # no temperature
    hot = load_checkpoint(save_checkpoint(tmp_path / "hot.pth", **{**ck.fields_to_save(), "temperature": 2.5}))
    assert hot.temperature == 2.5 and load_checkpoint(save_checkpoint(tmp_path / "hot2.pth", **hot.fields_to_save())
                                                      ).temperature == 2.5


@pytest.mark.parametrize("t", [-1.0, 0, 1000, "2", True, float("nan")],
                         ids=["neg", "zero", "big", "str", "bool", "nan"])
def test_a_bad_temperature_is_refused_when_the_checkpoint_is_read(tmp_path, t):
    """Validated once, on load, for every stage (export used to check it apart, twice)."""
    p = tiny_ckpt(tmp_path / "c.pth", temperature=t)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert str(e.value) == (f"{p}: temperature must be a number in (0, 1000), got {t!r}; re-run the calibration with "
                            "catdog-train")


def test_a_good_temperature_is_a_float(tmp_path):
    assert load_checkpoint(tiny_ckpt(tmp_path / "c.pth", temperature=2)).temperature == 2.0
    assert type(load_checkpoint(tiny_ckpt(tmp_path / "d.pth", temperature=2)).temperature) is float
