"""The training run end to end on tiny real photos: run dir contents, resume, skipped files,
kill -9, DDP with two gloo processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from catdog.runtime.spine.errors import OutputError
from catdog.train.loop.fit import BEST, CLASSES, LAST, METRICS, fit
from catdog.train.models.checkpoint import build_model, load_checkpoint
from catdog.train.recipe import TrainConfig

REPO = Path(__file__).parents[2]

TINY = dict(arch="mobilenet_v3_small", size=32, batch_size=4, workers=0, lr=1e-3)


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / METRICS).read_text().splitlines()]


def test_run_dir_contents(small_flat, tmp_path):
    run = tmp_path / "run"
    s = fit(TrainConfig(data=str(small_flat), epochs=2, scheduler="step", step_size=1, gamma=0.5, **TINY), run)
    assert s["epochs"] == 2 and 1 <= s["best_epoch"] <= 2
    names = {p.name for p in run.iterdir()}
    assert {BEST, LAST, METRICS, CLASSES, "curves.png", "confusion.png", "roc.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")], "no temp files left behind"
    assert json.loads((run / CLASSES).read_text()) == {"cat": 0, "dog": 1}
    r = rows(run)
    assert [x["epoch"] for x in r] == [1, 2]
    assert r[0]["lr"] == pytest.approx(1e-3) and r[1]["lr"] == pytest.approx(5e-4)  # StepLR
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "data_s", "compute_s"):
        assert key in r[0]
    assert r[0]["train_images"] + r[0]["val_images"] == 12
    for name in (BEST, LAST):  # plain dicts + tensors: loadable without trusting the file
        raw = torch.load(run / name, map_location="cpu", weights_only=True)
        assert {"format", "format_version", "arch", "arch_kwargs", "classes", "spec", "state_dict",
                "train_config", "metrics", "epoch", "versions"} <= set(raw)
    assert {"optimizer", "scheduler", "run_state"} <= set(torch.load(run / LAST, weights_only=True))
    best = load_checkpoint(run / BEST)
    assert best.epoch == s["best_epoch"] and best.spec.size == 32 and best.classes == ("cat", "dog")
    assert best.metrics["val_acc"] == pytest.approx(s["best_val_acc"])
    build_model(best)
    for png in ("curves.png", "confusion.png", "roc.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_resume_continues_exactly(small_flat, tmp_path):
    cfg = TrainConfig(data=str(small_flat), epochs=2, **TINY)
    straight = tmp_path / "straight"
    # on the CPU on any box: cuDNN's kernels are not bitwise repeatable, and this compares to 1e-5
    fit(cfg, straight, plots=False, device="cpu")
    split = tmp_path / "split"
    fit(cfg.with_(epochs=1), split, plots=False, device="cpu")
    assert load_checkpoint(split / LAST).epoch == 1
    s = fit(cfg.with_(epochs=2), split, resume=True, plots=False, device="cpu")
    assert s["epochs"] == 2 and [x["epoch"] for x in rows(split)] == [1, 2]
    # seeded per epoch + restored optimizer state: the resumed run is the uninterrupted one
    a, b = rows(straight), rows(split)
    assert a[1]["train_loss"] == pytest.approx(b[1]["train_loss"], rel=1e-5)
    sa, sb = load_checkpoint(straight / LAST).state_dict, load_checkpoint(split / LAST).state_dict
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5) for k in sa)


def test_resume_drops_metrics_past_last_checkpoint(small_flat, tmp_path):
    run = tmp_path / "run"
    fit(TrainConfig(data=str(small_flat), epochs=1, **TINY), run, plots=False)
    with open(run / METRICS, "a") as f:  # a crash after the metrics line, before last.pth
        f.write(json.dumps({"epoch": 2, "val_acc": 9.9}) + "\n" + '{"epoch": 3, "cut')
    fit(TrainConfig(epochs=2), run, resume=True, plots=False)
    r = rows(run)
    assert [x["epoch"] for x in r] == [1, 2] and r[1]["val_acc"] <= 1.0


def test_resume_of_a_finished_run_keeps_its_epoch_count(small_flat, tmp_path):
    run = tmp_path / "run"
    fit(TrainConfig(data=str(small_flat), epochs=1, **TINY), run, plots=False)
    before = (run / LAST).read_bytes()
    s = fit(None, run, resume=True)  # catdog-train --resume RUN without --epochs
    assert s["epochs"] == 1 and (run / LAST).read_bytes() == before and len(rows(run)) == 1


def test_refuses_to_overwrite_a_run(small_flat, tmp_path):
    run = tmp_path / "run"
    fit(TrainConfig(data=str(small_flat), epochs=1, **TINY), run, plots=False)
    before = (run / LAST).read_bytes()
    with pytest.raises(OutputError, match="already holds a run.*--resume"):
        fit(TrainConfig(data=str(small_flat), epochs=1, **TINY), run, plots=False)
    assert (run / LAST).read_bytes() == before


def test_corrupt_images_reported_once_and_skipped(flat_copy, tmp_path, capsys):
    from rich.console import Console

    (flat_copy / "cat.900.jpg").write_bytes(b"")  # zero bytes
    (flat_copy / "dog.901.jpg").write_text("this is text, not a JPEG")
    (flat_copy / "cat.902.jpg").write_bytes(next(flat_copy.glob("cat.*")).read_bytes()[:300])  # truncated
    console = Console(file=sys.stdout, width=200)
    s = fit(TrainConfig(data=str(flat_copy), epochs=2, **TINY), tmp_path / "run", console=console, plots=False)
    assert s["epochs"] == 2
    assert len(s["skipped"]) == 3
    out = capsys.readouterr().out
    assert out.count("skipped 3 unreadable image(s)") == 1, "reported once, not every epoch"
    for name in ("cat.900.jpg", "dog.901.jpg", "cat.902.jpg"):
        assert out.count(name) == 1
    r = rows(tmp_path / "run")
    assert r[1]["train_images"] + r[1]["val_images"] == 12


def test_bracketed_names_are_text_not_markup(small_flat, tmp_path):
    """Class folders and the run folder are printed through rich: `[red]` in a name shows as typed
    (it used to turn the text red and vanish), and `[/x]` (folder `a[`, folder `x]`) must not crash
    the run with a MarkupError."""
    import io

    from rich.console import Console

    data = tmp_path / "data"
    for p in sorted(small_flat.glob("*.jpg")):
        cls = data / ("[red]cat" if p.name.startswith("cat.") else "[bold]dog")
        cls.mkdir(parents=True, exist_ok=True)
        (cls / p.name).write_bytes(p.read_bytes())
    run = tmp_path / "a[" / "x]" / "run"
    buf = io.StringIO()
    fit(TrainConfig(data=str(data), epochs=1, **TINY), run, console=Console(file=buf, width=500, soft_wrap=True))
    out = buf.getvalue()
    assert "classes ['[bold]dog', '[red]cat'] (folders layout)" in out, out
    assert f"wrote {run / 'curves.png'}" in out, out
    buf = io.StringIO()
    s = fit(TrainConfig(epochs=2), run, resume=True, plots=False, console=Console(file=buf, width=500, soft_wrap=True))
    assert s["epochs"] == 2 and f"resuming {run} after epoch 1 of 2" in buf.getvalue(), buf.getvalue()


def test_early_stopping(small_flat, tmp_path):
    cfg = TrainConfig(data=str(small_flat), epochs=20, patience=1, **{**TINY, "lr": 0.0})
    s = fit(cfg, tmp_path / "run", plots=False)
    assert s["epochs"] == 2 and s["best_epoch"] == 1  # lr 0: epoch 2 cannot improve -> stop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from catdog.train.cli import main; main()", *args]


@pytest.mark.slow
def test_kill_9_leaves_loadable_checkpoints_and_resume_works(small_flat, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(small_flat), "--arch", "mobilenet_v3_small", "--size", "32", "--batch-size", "2",
            "--workers", "0", "--epochs", "60", "--out", str(run), "--quiet"]
    proc = subprocess.Popen(train_cmd(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / LAST).exists():
        time.sleep(0.05)
    time.sleep(0.7)  # land somewhere inside a later epoch or save
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    last = load_checkpoint(run / LAST)
    best = load_checkpoint(run / BEST)
    done = last.epoch
    assert 1 <= done < 60 and 1 <= best.epoch <= done
    build_model(last)
    build_model(best)
    r = subprocess.run(train_cmd("--resume", str(run), "--epochs", str(done + 1), "--quiet", "--no-plots"), cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(run / LAST).epoch == done + 1
    assert [x["epoch"] for x in rows(run)] == list(range(1, done + 2))


@pytest.mark.slow
def test_ddp_two_gloo_processes(small_flat, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "catdog.train.cli", "--data", str(small_flat), "--arch", "mobilenet_v3_small", "--size", "32",
           "--batch-size", "2", "--workers", "0", "--epochs", "1", "--out", str(run), "--quiet",
           "--device", "cpu"]  # gloo on any box: NCCL with two ranks on one GPU is gpu-check.sh's business
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r0 = rows(run)
    assert len(r0) == 1
    assert r0[0]["train_images"] == 8  # 10 train images over 2 ranks, batch 2: a lone last image is dropped
    ck = load_checkpoint(run / LAST)
    assert ck.epoch == 1 and not any(k.startswith("module.") for k in ck.state_dict)
    build_model(ck)
