"""catdog-train --resume with options given again: the run's own values change nothing, the ones a
run can go on with are kept (and recorded in its checkpoints), every other one is refused with one
line and leaves the run folder as it was."""

from __future__ import annotations

import shutil

import pytest
from test_cli import main_in_process

from catdog.train.loop.fit import LAST, fit
from catdog.train.models import get_model
from catdog.train.models.checkpoint import load_checkpoint, save_checkpoint
from catdog.train.recipe import TrainConfig

TINY = dict(arch="mobilenet_v3_small", size=32, batch_size=4, workers=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_flat):
    """A real one-epoch run (optimizer state and all); each test resumes a copy of it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    fit(TrainConfig(data=str(small_flat), epochs=1, **TINY), run, plots=False, device="cpu")
    return run


@pytest.fixture(scope="module")
def written(tmp_path_factory, small_flat):
    """A run folder as one epoch leaves it, written directly: refusals come before any training."""
    from catdog.train.loop.fit import resolve_arch

    run = tmp_path_factory.mktemp("written") / "run"
    cfg = TrainConfig(data=str(small_flat), epochs=1, **TINY)
    spec, kwargs = resolve_arch(cfg)
    save_checkpoint(run / LAST, arch=cfg.arch, arch_kwargs=kwargs, classes=["cat", "dog"], spec=spec,
                    state_dict=get_model(cfg.arch, 2).state_dict(), train_config=cfg.to_dict(),
                    metrics={"val_acc": 0.5}, epoch=1)
    return run


@pytest.mark.slow
def test_resume_keeps_what_the_run_can_go_on_with(trained, small_flat, tmp_path, monkeypatch, capsys):
    run, moved = tmp_path / "run", tmp_path / "moved"
    shutil.copytree(trained, run)
    shutil.copytree(small_flat, moved)  # the same photos, somewhere else now
    args = ["--resume", str(run), "--epochs", "2", "--data", str(moved), "--batch-size", "2", "--accum", "2",
            "--amp", "off", "--patience", "3",
            "--arch", "mobilenet_v3_small", "--size", "32", "--lr", "0.0001",  # the run's own: no change
            "--quiet", "--no-plots", "--device", "cpu"]
    code, err = main_in_process(args, monkeypatch, capsys)
    assert code == 0, err
    last = load_checkpoint(run / LAST)
    cfg = TrainConfig.from_dict(last.train_config)
    assert last.epoch == 2 and cfg == TrainConfig(data=str(moved), epochs=2, **{**TINY, "batch_size": 2},
                                                  accum_steps=2, amp="off", patience=3)


@pytest.mark.parametrize("args, says", [
    (["--lr", "0.01"], "was trained with --lr 0.0001 and --resume goes on with it (last.pth's optimizer state "
                       "carries the run's learning rate): leave --lr out, or train with --lr 0.01 in a new --out "
                       "folder"),
    (["--no-probe"], "was trained with --probe and --resume goes on with it (the linear probe is fitted when a "
                     "run starts): leave --no-probe out, or train with --no-probe in a new --out folder"),
    (["--size", "48"], "was trained with --size 32 and --resume goes on with it (the model and its "
                       "preprocessing are made for the run's input size)"),
    (["--arch-kw", "dropout=0.5"], "was trained with no --arch-kw and --resume goes on with it (last.pth holds "
                                   "that model's weights): leave --arch-kw out, or train with --arch-kw "
                                   "dropout=0.5 in a new --out folder"),
    (["--mixup", "0.2"], "was trained with --mixup 0.0 and --resume goes on with it (its checkpoints record one "
                         "recipe for the whole run)"),
    (["--val", "."], "was trained with no --val and --resume goes on with it (a split of --data and a --val "
                     "folder are different validation sets)"),
    (["--batch-size", "2"], "trains 4 images per optimizer step (--batch-size 4 --accum 1) and --resume goes on "
                            "with that: give --batch-size and --accum whose product it is"),
    (["--arch", "resnet18"], "is a mobilenet_v3_small run; --resume continues it as mobilenet_v3_small: leave "
                             "--arch out, or train resnet18 in a new --out folder"),
])
def test_resume_refuses_what_would_make_another_run(args, says, written, monkeypatch, capsys):
    before = (written / LAST).read_bytes()
    code, err = main_in_process(["--resume", str(written), *args, "--quiet"], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {written} {says}"), err
    assert (written / LAST).read_bytes() == before and sorted(p.name for p in written.iterdir()) == [LAST]
