"""catdog-train from the outside: prepare, stats, evaluate, both command forms, and error paths
(one line on stderr, non-zero exit, no traceback unless --debug)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from catdog.runtime.spine.errors import ConfigError, DataError
from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.metrics import format_accuracy
from catdog.train.data.prepare import channel_stats, prepare
from catdog.train.loop.evaluate import evaluate_checkpoint
from catdog.train.loop.fit import load_data
from catdog.train.recipe import TrainConfig


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_prepare_copies_and_keeps_originals(flat_copy, tmp_path):
    before = {p.name: p.read_bytes() for p in flat_copy.iterdir()}
    rep = prepare(flat_copy, tmp_path / "out")
    assert rep.written == 12 and not rep.bad
    assert tree(tmp_path / "out") == sorted(f"{n.split('.')[0]}/{n}" for n in before)
    assert {p.name: p.read_bytes() for p in flat_copy.iterdir()} == before  # untouched
    assert (tmp_path / "out/cat/cat.168.jpg").read_bytes() == before["cat.168.jpg"]
    again = prepare(flat_copy, tmp_path / "out")  # rerun: fills in only what is missing
    assert again.written == 0 and again.existing == 12


def test_prepare_move(flat_copy, tmp_path):
    rep = prepare(flat_copy, tmp_path / "out", move=True)
    assert rep.written == 12 and list(flat_copy.iterdir()) == []
    assert len(tree(tmp_path / "out")) == 12


def test_prepare_resize_cache(flat_copy, tmp_path):
    big = flat_copy / "dog.500.png"  # a larger PNG: becomes a shorter-side-40 JPEG
    cv2.imwrite(str(big), np.full((90, 120, 3), 128, np.uint8))
    (flat_copy / "cat.501.jpg").write_bytes(b"garbage")
    rep = prepare(flat_copy, tmp_path / "cache", resize=40)
    assert rep.written == 13 and len(rep.bad) == 1 and "cat.501.jpg" in rep.bad[0]
    img = cv2.imread(str(tmp_path / "cache/dog/dog.500.jpg"))
    assert img.shape[:2] == (40, 53)
    for p in (tmp_path / "cache").rglob("*.jpg"):
        assert min(cv2.imread(str(p)).shape[:2]) == 40
    assert big.exists()
    with pytest.raises(ConfigError, match="--move with --resize"):
        prepare(flat_copy, tmp_path / "x", move=True, resize=40)


def test_stats(small_flat, small_folders):
    s = channel_stats(small_flat)
    assert s["images"] == 12 and s["channel_order"] == "RGB"
    assert all(0.2 < m < 0.8 for m in s["mean"]) and all(0.1 < v < 0.5 for v in s["std"])
    # the same pixels in another layout give the same numbers
    assert channel_stats(small_folders)["mean"] == s["mean"]
    with pytest.raises(DataError):
        channel_stats(small_flat / "nope")


def test_stats_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(4)]
    for i, im in enumerate(imgs):
        cv2.imwrite(str(tmp_path / f"{'ab'[i % 2]}.{i}.png"), im)
    s = channel_stats(tmp_path, short=128)
    px = np.concatenate([im[:, :, ::-1].reshape(-1, 3) for im in imgs]) / 255.0
    assert np.allclose(s["mean"], px.mean(0), atol=1e-4) and np.allclose(s["std"], px.std(0), atol=1e-4)


@pytest.mark.slow
def test_cli_train_default_form_then_evaluate(train_cli, small_flat, tmp_path):
    run = tmp_path / "run"
    r = train_cli("--data", str(small_flat), "--arch", "mobilenet_v3_small", "--size", "32", "--epochs", "1",
                  "--batch-size", "4", "--workers", "0", "--out", str(run), "--seed", "3")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 1 and (run / "best.pth").exists()
    assert "epoch 1:" in r.stderr and "val loss" in r.stderr
    r = train_cli("evaluate", str(run / "best.pth"), str(small_flat), str(small_flat), "--workers", "0")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    one = res["sets"][str(small_flat)]
    assert one["images"] == 12 and res["classes"] == ["cat", "dog"] and len(res["sets"]) == 1
    assert f"{small_flat}: {format_accuracy(one['correct'], 12)}" in r.stderr  # e.g. "58.33% (32.0-80.7, n=12)"
    assert torch.load(run / "best.pth", weights_only=True)["train_config"]["seed"] == 3


def test_cli_train_subcommand_form_and_prepare_stats(flat_copy, tmp_path, monkeypatch, capsys):
    args = ["prepare", str(flat_copy), str(tmp_path / "cache"), "--resize", "48"]
    code, _ = main_in_process(args, monkeypatch, capsys)
    assert code == 0
    code, _ = main_in_process(["stats", str(tmp_path / "cache")], monkeypatch, capsys, expect_out="images")
    assert code == 0
    args = ["train", "--data", str(tmp_path / "cache"), "--arch", "resnet18", "--arch-kw", "mode=frozen", "--size",
            "32", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--quiet", "--out", str(tmp_path / "run")]
    code, err = main_in_process(args, monkeypatch, capsys)
    assert code == 0, err
    assert torch.load(tmp_path / "run/last.pth", weights_only=True)["arch_kwargs"] == {"mode": "frozen"}


@pytest.mark.parametrize(
    "case, expect",
    [
        ("empty", "no images found"),
        ("one_class", "only one class"),
        ("unknown_arch", "unknown arch 'vgg99'; known: alexnet"),
        ("cuda", "CUDA is not available"),
        ("no_out", "needs --data DIR and --out RUN_DIR"),
        ("bad_optimizer", "unknown optimizer 'rmsprop'"),
    ],
)
def test_cli_errors_are_one_line(case, expect, train_cli, tmp_path, small_flat, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    one = tmp_path / "one"
    one.mkdir()
    for p in sorted(small_flat.glob("dog.*"))[:2]:
        (one / p.name).write_bytes(p.read_bytes())
    base = ["--out", str(tmp_path / "run"), "--epochs", "1", "--quiet"]
    args = {
        "empty": ["--data", str(empty), *base],
        "one_class": ["--data", str(one), *base],
        "unknown_arch": ["--data", str(small_flat), "--arch", "vgg99", *base],
        "cuda": ["--data", str(small_flat), "--device", "cuda", *base],
        "no_out": ["--data", str(small_flat)],
        "bad_optimizer": ["--data", str(small_flat), "--optimizer", "rmsprop", *base],
    }[case]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CUDA case, even on a GPU machine
    code, stderr = main_in_process(args, monkeypatch, capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], stderr
    assert "Traceback" not in stderr


def test_macos_dot_underscore_files_are_ignored_by_every_stage(small_flat, small_folders, tmp_path):
    """`._cat.1.jpg` (macOS resource forks, copied along to Linux) are not images: the runtime's one
    folder reader skips them for scan, training, prepare, stats and evaluate alike, whatever they hold."""
    from test_checkpoint import tiny_ckpt

    flat, folders = tmp_path / "flat", tmp_path / "folders"
    shutil.copytree(small_flat, flat)
    shutil.copytree(small_folders, folders)
    photo = next(small_flat.glob("cat.*")).read_bytes()
    garbage = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # an AppleDouble header
    for junk, body in ((flat / "._cat.1.jpg", garbage), (flat / "._dog.2.jpg", photo),
                       (folders / "apple" / "._x.jpg", garbage), (folders / "mango" / "._cat.3.jpg", photo)):
        junk.write_bytes(body)

    def names(root: Path) -> list[str]:
        return [p.name for p in scan(root).paths]

    layouts = ((flat, small_flat, ("cat", "dog")), (folders, small_folders, ("apple", "mango", "zebra")))
    for root, clean, classes in layouts:
        assert names(root) == names(clean) and len(names(root)) == 12
        train, val = load_data(TrainConfig(data=str(root)))
        assert len(train.samples) + len(val.samples) == 12
        rep = prepare(root, tmp_path / f"prep-{root.name}")
        assert (rep.written, rep.bad) == (12, []) and not [n for n in tree(tmp_path / f"prep-{root.name}") if "._" in n]
        s = channel_stats(root)
        assert (s["images"], s["skipped"]) == (12, []) and s["mean"] == channel_stats(clean)["mean"]
        res = evaluate_checkpoint(tiny_ckpt(tmp_path / f"{root.name}.pth", classes), [root], workers=0)
        assert (res["sets"][str(root)]["images"], res["sets"][str(root)]["skipped"]) == (12, [])


@pytest.mark.parametrize("form", ["default", "train", "prepare", "stats", "evaluate", "root"])
def test_debug_shows_the_traceback_in_every_command_form(form, tmp_path, monkeypatch, capsys):
    """One boundary for every command: --debug shows the traceback whether it follows the default
    (callback) form, the `train` command, a subcommand, or comes before the subcommand."""
    empty = tmp_path / "empty"
    empty.mkdir()
    run = ["--data", str(empty), "--out", str(tmp_path / "run"), "--quiet"]
    args = {"default": run, "train": ["train", *run], "prepare": ["prepare", str(empty), str(tmp_path / "out")],
            "stats": ["stats", str(empty)], "evaluate": ["evaluate", str(tmp_path / "none.pth"), str(empty)],
            "root": ["--debug", "prepare", str(empty), str(tmp_path / "out")]}[form]
    if form != "root":
        code, err = main_in_process(args, monkeypatch, capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
        args = [*args, "--debug"]
    code, err = main_in_process(args, monkeypatch, capsys)
    assert code == 2 and "Traceback (most recent call last)" in err, err
    assert "catdog.runtime.spine.errors." in err and err.strip().splitlines()[-1].startswith("error: "), err


def main_in_process(args, monkeypatch, capsys, expect_out: str | None = None) -> tuple[int, str]:
    """The console script's main() in this process (fast); it reports through stderr + SystemExit."""
    import sys

    from catdog.train import cli

    monkeypatch.setattr(sys, "argv", ["catdog-train", *args])
    monkeypatch.setattr(cli, "err", cli.Console(stderr=True, soft_wrap=True))  # bound to capsys' stderr
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out = capsys.readouterr()
    if expect_out:
        assert expect_out in out.out
    return exit_.value.code or 0, out.err


@pytest.mark.slow
def test_cli_error_in_a_real_process_and_debug(train_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    args = ["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]
    r = train_cli(*args)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no images found" in r.stderr
    assert "Traceback" not in r.stderr
    d = train_cli(*args, "--debug")
    assert d.returncode != 0 and "Traceback" in d.stderr and "DataError" in d.stderr


@pytest.mark.parametrize("command", [[], ["cv"], ["bench"]])
def test_an_unknown_arch_on_the_command_line_is_a_config_error(command, small_flat, tmp_path, monkeypatch, capsys):
    """The command line's mistake, not a checkpoint's: an arch a checkpoint names stays a CheckpointError."""
    from catdog.runtime.spine.errors import CheckpointError
    from catdog.train.models import get_entry

    out = [] if command == ["bench"] else ["--out", str(tmp_path / "run")]
    args = [*command, "--data", str(small_flat), "--arch", "vgg99", *out, "--debug"]
    code, err = main_in_process(args, monkeypatch, capsys)
    assert code == 2 and "catdog.runtime.spine.errors.ConfigError: unknown arch 'vgg99'; known: alexnet" in err, err
    assert not (tmp_path / "run").exists()
    with pytest.raises(CheckpointError, match="unknown arch 'vgg99'"):
        get_entry("vgg99")


@pytest.mark.slow
def test_bench_times_the_loader_and_the_model(train_cli, small_flat):
    r = train_cli("bench", "--data", str(small_flat), "--arch", "mobilenet_v3_small", "--size", "32",
                  "--batch-size", "4", "--workers", "0", "--seconds", "0.05", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    res = json.loads(lines[-1])
    assert lines[0] == f"mobilenet_v3_small @ 32px, batch 4, 0 loader workers, {res['threads']} torch threads, cpu"
    assert [ln.split()[0] for ln in lines[1:4]] == ["data", "model", "loader"] and res["images"] == 12
    assert res["bottleneck"] == ("loader" if res["loader_img_s"] < res["model_img_s"] else "model")
    assert lines[4] == f"  bottleneck: {res['bottleneck']}"
