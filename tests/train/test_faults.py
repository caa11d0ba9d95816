"""Faults around a training run: Ctrl-C, a full disk, an unwritable --out, and checkpoints
that belong to another arch or another class count. Each is one line, a non-zero exit, and the run
folder stays resumable."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_cli import main_in_process
from testkit.fulldisk import available, run_on_full_disk
from testkit.procs import interruptible

from catdog.train.loop.fit import LAST
from catdog.train.models import get_model
from catdog.train.models.checkpoint import load_checkpoint, save_checkpoint
from catdog.train.recipe import TrainConfig

REPO = Path(__file__).resolve().parents[2]

TRAIN = [sys.executable, "-c", "from catdog.train.cli import main; main()"]
TINY = ["--arch", "mobilenet_v3_small", "--size", "32", "--batch-size", "4", "--quiet", "--no-plots"]
needs_full_disk = pytest.mark.skipif(available() is not None, reason=f"no real full disk here: {available()}")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_flat):
    """A run folder as one epoch of training leaves it (written directly: training it costs ~10 s)."""
    from catdog.train.loop.fit import resolve_arch

    run = tmp_path_factory.mktemp("run") / "run"
    cfg = TrainConfig(data=str(small_flat), arch="mobilenet_v3_small", size=32, epochs=1, batch_size=4, workers=0)
    spec, kwargs = resolve_arch(cfg)
    for name in ("best.pth", LAST):
        save_checkpoint(run / name, arch=cfg.arch, arch_kwargs=kwargs, classes=["cat", "dog"], spec=spec,
                        state_dict=get_model(cfg.arch, 2).state_dict(), train_config=cfg.to_dict(),
                        metrics={"val_acc": 0.5}, epoch=1)
    return run


def one_line(args, monkeypatch, capsys, tmp_path) -> str:
    code, stderr = main_in_process(args, monkeypatch, capsys)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_weights_of_another_arch(small_flat, tmp_path, monkeypatch, capsys):
    torch.save(get_model("resnet18", 2).state_dict(), tmp_path / "r18.pth")
    line = one_line(["--data", str(small_flat), *TINY, "--weights", str(tmp_path / "r18.pth"), "--out",
                     str(tmp_path / "run"), "--epochs", "1", "--workers", "0"], monkeypatch, capsys, tmp_path)
    assert "r18.pth" in line and "do not fit this arch" in line


def test_resume_as_another_arch(tiny_run, monkeypatch, capsys, tmp_path):
    line = one_line(["--resume", str(tiny_run), "--arch", "resnet18"], monkeypatch, capsys, tmp_path)
    assert line == (f"error: {tiny_run} is a mobilenet_v3_small run; --resume continues it as mobilenet_v3_small: "
                    "leave --arch out, or train resnet18 in a new --out folder")


def test_resume_from_a_last_pth_of_another_arch(tiny_run, tmp_path, monkeypatch, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    raw = torch.load(run / LAST, weights_only=True)
    raw["state_dict"] = get_model("resnet18", 2).state_dict()  # another run's weights under this run's name
    torch.save(raw, run / LAST)
    line = one_line(["--resume", str(run), "--epochs", "2", "--quiet"], monkeypatch, capsys, tmp_path)
    assert f"{run / LAST}: weights do not match its arch 'mobilenet_v3_small'" in line


def test_val_data_with_another_class_count(tiny_run, small_folders, small_flat, tmp_path, monkeypatch, capsys):
    line = one_line(["evaluate", str(tiny_run / "best.pth"), str(small_folders), "--workers", "0"],
                    monkeypatch, capsys, tmp_path)
    assert "has 3 classes" in line and "model has 2" in line
    line = one_line(["--data", str(small_flat), "--val", str(small_folders), *TINY, "--out", str(tmp_path / "r"),
                     "--workers", "0"], monkeypatch, capsys, tmp_path)
    assert str(small_folders) in line


def test_unwritable_out_fails_before_training(small_flat, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = one_line(["--data", str(small_flat), *TINY, "--out", str(blocker / "run")], monkeypatch, capsys, tmp_path)
    assert line == f"error: cannot write to {blocker / 'run'}: Not a directory; choose a writable folder"


def _with_empty_class(small_folders: Path, data: Path) -> Path:
    for c in ("apple", "mango"):
        shutil.copytree(small_folders / c, data / c)
    (data / "bird").mkdir()
    return data


def test_an_empty_class_folder_is_refused_before_training(small_folders, tmp_path, monkeypatch, capsys):
    """An empty bird/ beside apple/ and mango/ used to train a 2-class model, the class list its only trace."""
    data = _with_empty_class(small_folders, tmp_path / "data")
    out = tmp_path / "runs" / "run"
    line = one_line(["--data", str(data), *TINY, "--workers", "0", "--epochs", "1", "--out", str(out)],
                    monkeypatch, capsys, tmp_path)
    assert line == (f"error: {data / 'bird'}: class folder has no images (.jpg, .jpeg, .png, .bmp, .webp, .tif, "
                    ".tiff), so the classes would be only the other 2; add its images or remove the folder")
    assert not (tmp_path / "runs").exists()  # the run folder (and runs/) it made: removed, being empty


def test_a_failed_run_keeps_a_folder_the_user_had(small_folders, tmp_path, monkeypatch, capsys):
    data = _with_empty_class(small_folders, tmp_path / "data")
    (tmp_path / "mine").mkdir()
    one_line(["--data", str(data), *TINY, "--workers", "0", "--out", str(tmp_path / "mine")], monkeypatch, capsys,
             tmp_path)
    assert (tmp_path / "mine").is_dir()


def test_num_classes_as_an_arch_kw_is_one_line(small_flat, tmp_path, monkeypatch, capsys):
    line = one_line(["--data", str(small_flat), *TINY, "--arch-kw", "num_classes=7", "--out", str(tmp_path / "r")],
                    monkeypatch, capsys, tmp_path)
    assert line == ("error: --arch-kw num_classes: the class count comes from the data (one class per folder or "
                    "name); leave it out")
    assert not (tmp_path / "r").exists()


def test_broken_checkpoints_in_real_processes(tiny_run, small_flat, tmp_path, train_cli):
    """Random bytes that start like a pickle: "not a checkpoint", and torch's warning about them never
    reaches stderr (a real process: pytest would capture a warning itself); a num_classes kwarg that
    contradicts the classes: one line instead of an internal TypeError; a --weights file of junk
    leaves no run folder."""
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80" + bytes([222]) + bytes(range(256)) * 8)
    r = train_cli("evaluate", str(junk), str(small_flat), "--workers", "0")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"error: {junk}: not a checkpoint: corrupt, truncated or not a PyTorch file (UnpicklingError); "
        "pass a best.pth / last.pth from catdog-train"], r.stderr
    raw = torch.load(tiny_run / "best.pth", weights_only=True)
    torch.save({**raw, "arch_kwargs": {"num_classes": 7}}, tmp_path / "nc7.pth")
    r = train_cli("evaluate", str(tmp_path / "nc7.pth"), str(small_flat), "--workers", "0")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"error: {tmp_path / 'nc7.pth'}: arch_kwargs has num_classes=7 but the checkpoint lists 2 classes "
        "['cat', 'dog']; the two must agree: remove num_classes from arch_kwargs (the classes list sets the count)"]
    r = train_cli("--data", str(small_flat), *TINY, "--workers", "0", "--weights", str(junk), "--out",
                  str(tmp_path / "run"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "junk.pth: not a safe state_dict" in r.stderr
    assert not (tmp_path / "run").exists()


@needs_full_disk
def test_full_disk_is_found_before_the_first_epoch(small_flat, tmp_path):
    r, left = run_on_full_disk(tmp_path, [*TRAIN, "--data", small_flat, *TINY, "--workers", "0",
                                          "--out", tmp_path / "full" / "run"])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "only 0.0 MB free, mobilenet_v3_small checkpoints need about" in r.stderr
    assert not [n for n in left if n.endswith(".pth") or n.endswith(".tmp")], left


@needs_full_disk
def test_checkpoint_save_on_a_full_disk_keeps_the_previous_one(tmp_path):
    """torch.save to a path raised a C++ RuntimeError on ENOSPC (a traceback in training)."""
    code = ("import sys, torch\nfrom catdog.train.models.checkpoint import save_checkpoint\n"
            "from catdog.runtime.spine.errors import CatdogError\n"
            "try:\n    save_checkpoint(sys.argv[1], arch='x', arch_kwargs={}, classes=['a', 'b'], spec=None,\n"
            "        state_dict={'w': torch.zeros(100000)}, train_config={}, metrics={}, epoch=2)\n"
            "except CatdogError as e:\n    sys.exit(f'error: {e}')\n")
    old = tmp_path / "old.pth"
    save_checkpoint(old, arch="x", arch_kwargs={}, classes=["a", "b"], spec=None, state_dict={"w": torch.ones(3)},
                    train_config={}, metrics={}, epoch=1)
    target = tmp_path / "full" / "last.pth"
    r, left = run_on_full_disk(tmp_path, [sys.executable, "-c", code, target], previous={"last.pth": old.read_bytes()})
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: cannot write {target}: No space left on device; free some disk space"
    assert left == {"last.pth": old.read_bytes()}


@pytest.mark.slow
def test_ctrl_c_mid_epoch_stops_cleanly_and_resumes(small_flat, tmp_path):
    run = tmp_path / "run"
    # interruptible: a background `pytest &` would give the child SIGINT ignored
    proc = interruptible([*TRAIN, "--data", small_flat, *TINY, "--batch-size", "2", "--workers", "1",
                          "--epochs", "50", "--out", run], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / LAST).exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # inside a later epoch
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    done = load_checkpoint(run / LAST).epoch
    assert proc.returncode == 130 and "Traceback" not in err and out == "", err
    assert err.strip().splitlines()[-1].startswith(f"interrupted; epoch {done} was the last complete one (best val acc")
    assert err.strip().endswith(f"saved in {run}; continue with --resume {run}")
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    r = subprocess.run([*TRAIN, "--resume", str(run), "--epochs", str(done + 1), "--quiet", "--no-plots"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(run / LAST).epoch == done + 1
