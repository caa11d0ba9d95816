"""Bad input to catdog-export: one clear line, non-zero exit, no traceback unless --debug, and
nothing half-written under a final name (kill -9 included)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from testkit.export import cli
from testkit.fulldisk import available, run_on_full_disk
from testkit.procs import interruptible

from catdog.export.artifacts.formats import FORMATS
from catdog.export.output.staging import remove_stale_temps
from catdog.runtime.engine.session import PROVIDERS, available_providers

ARCH = "efficientnet_lite0"
MISSING_PROVIDER = next(p for p in PROVIDERS if p not in available_providers())
FINAL_NAMES = [f.filename for f in FORMATS.values()] + ["export-report.json", "export-report.md"]


class Payload:
    """Unpickling this would create `marker`: proof that code ran. weights_only must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line_error(capfd) -> str:
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and err[0].startswith("error: ")
    return err[0]


def resave(src: Path, dst: Path, **changes) -> Path:
    ckpt = torch.load(src, weights_only=True)  # the file's own dict, to re-save changed
    ckpt.update(changes)
    drop = [k for k, v in changes.items() if v is None]
    for k in drop:
        del ckpt[k]
    torch.save(ckpt, dst)
    return dst


def test_checkpoint_with_pickled_code_is_refused_and_never_run(ckpt_factory, photo_dir, tmp_path, capfd):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    ckpt = torch.load(ckpt_factory(ARCH), weights_only=True)
    torch.save({**ckpt, "metrics": Payload(marker)}, evil)
    code = cli("--ckpt", evil, "--out", tmp_path / "out", "--parity", photo_dir)
    line = one_line_error(capfd)
    assert code != 0 and "refused" in line and "pickled code" in line and str(evil) in line
    assert not marker.exists(), "the checkpoint's code was executed"


@pytest.mark.parametrize(
    "changes, expect",
    [
        ({"state_dict": None}, "lacks ['state_dict']"),
        ({"arch": "resnet9000"}, "unknown arch 'resnet9000'; known: "),
        ({"classes": ["cat", "dog", "bird"]}, "3 classes"),
        ({"temperature": -1.0}, "temperature must be a number in (0, 1000), got -1.0"),
    ],
    ids=["missing-field", "unknown-arch", "class-count-mismatch", "bad-temperature"],
)
def test_bad_checkpoints_are_one_line_errors(ckpt_factory, photo_dir, tmp_path, capfd, changes, expect):
    bad = resave(ckpt_factory(ARCH), tmp_path / "bad.pth", **changes)
    code = cli("--ckpt", bad, "--out", tmp_path / "out", "--parity", photo_dir)
    assert code == 2 and expect in one_line_error(capfd)
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_unwritable_output_fails_before_any_work(ckpt_factory, photo_dir, tmp_path, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    t = time.perf_counter()
    code = cli("--ckpt", tmp_path / "missing.pth", "--out", blocker / "out", "--parity", photo_dir)
    line = one_line_error(capfd)
    # The output folder is checked before the checkpoint is even opened.
    assert code == 2 and "cannot write to" in line and "a-file" in line and time.perf_counter() - t < 5


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--int8"], "--int8 needs calibration images: pass --calib DIR"),
        ([], "parity needs real images"),
        (["--parity", "{photos}", "--calib-method", "median"],
         "unknown --calib-method 'median'; known: minmax, entropy, percentile"),
        (["--parity", "{photos}", "--int8-activations", "int4"],
         "unknown --int8-activations 'int4'; known: uint8, int8"),
        (["--parity", "{photos}", "--int8-target", "avx3"],
         "unknown --int8-target 'avx3'; known: avx2, vnni, arm, auto"),
        (["--parity", "{photos}", "--gate", "int8.speed=2"], "unknown gate; known: "),
        (["--parity", "{tmp}/nowhere"], "nowhere: not a folder of images"),
        (["--parity", "{tmp}"], "no images"),
        (["--parity", "{photos}", "--parity", "{photos}"], "is given twice"),
        (["--parity", "{photos}", "--select-count", "0"], "--select-count must be at least 1"),
        (["--int8-for", "tensorrt"], "--int8-for tensorrt needs calibration images: pass --calib DIR"),
        (["--parity", "{photos}", "--int8-for", "gpu"], "--int8-for 'gpu': unknown target; known: cpu, tensorrt"),
        (["--parity", "{photos}", "--parity-provider", "gpu"], "--parity-provider 'gpu': unknown; known: cpu,"),
        # a provider this onnxruntime lacks (whichever build the suite runs with)
        (["--parity", "{photos}", "--parity-provider", MISSING_PROVIDER],
         f"--parity-provider {MISSING_PROVIDER}: not available in this onnxruntime build; install: "),
    ],
    ids=["int8-without-calib", "no-images", "calib-method", "activations", "int8-target", "gate-name", "parity-missing",
         "parity-empty", "parity-twice", "select-count", "int8-for-without-calib", "int8-for-unknown",
         "parity-provider-unknown", "parity-provider-missing"],
)
def test_usage_errors_are_one_line(ckpt_factory, photo_dir, tmp_path, capfd, args, expect):
    args = [a.format(photos=photo_dir, tmp=tmp_path / "empty") for a in args]
    (tmp_path / "empty").mkdir()
    code = cli("--ckpt", ckpt_factory(ARCH), "--out", tmp_path / "out", *args)
    assert code == 2 and expect in one_line_error(capfd)


def test_debug_shows_the_traceback(tmp_path, photo_dir, capfd):
    code = cli("--ckpt", tmp_path / "missing.pth", "--out", tmp_path / "out", "--parity", photo_dir, "--debug")
    err = capfd.readouterr().err
    assert code == 2 and "Traceback" in err and "no such checkpoint file" in err


def test_unreadable_parity_image_is_reported_and_the_rest_used(ckpt_factory, photo_dir, tmp_path):
    from catdog.export.pipeline import ExportOptions, run_export

    parity = tmp_path / "parity"
    shutil.copytree(photo_dir, parity)
    (parity / "cat.0.jpg").write_bytes(b"")  # zero bytes
    (parity / "dog.0.jpg").write_text("not an image")
    report = run_export(ExportOptions(ckpt=ckpt_factory(ARCH), out=tmp_path / "out", parity=(parity,), latency_runs=1))
    [par] = report.parity_sets
    assert report.passed and par.images == 12
    assert len(par.skipped_images) == 2 and any("cat.0.jpg: empty file" in s for s in par.skipped_images)


def test_class_folder_labels_must_match_the_model(ckpt_factory, photo_dir, tmp_path, capfd):
    parity = tmp_path / "parity"
    for p in photo_dir.iterdir():
        label = "kitten" if p.name.startswith("cat") else "dog"
        (parity / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, parity / label / p.name)
    code = cli("--ckpt", ckpt_factory(ARCH), "--out", tmp_path / "out", "--parity", parity)
    line = one_line_error(capfd)  # the runtime's folder reader names the classes it found and the model's
    assert code == 2 and "['dog', 'kitten'], but the model has 2: ['cat', 'dog']" in line


def test_kill_9_mid_export_leaves_no_final_named_file(ckpt_factory, photo_dir, tmp_path):
    """SIGKILL the real CLI process while it writes artifacts; then only hidden temp files may
    exist, and the next export clears them."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-c", "from catdog.export.cli import main; main()", "--ckpt", str(ckpt_factory(ARCH)),
           "--out", str(out), "--int8", "--calib", str(photo_dir), "--fp16", "--bake-preprocess"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # Wait until the second artifact is being staged: the first one is complete on disk then.
        while time.monotonic() < deadline and not list(out.glob(".model.onnx.*.tmp")):
            assert proc.poll() is None, "export finished before it could be killed"
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    names = [p.name for p in out.iterdir()]
    assert not set(names) & set(FINAL_NAMES), names
    assert any(n.startswith(".model.ts.") for n in names), names  # staged, never published
    assert remove_stale_temps(out, [f.filename for f in FORMATS.values()])
    assert list(out.iterdir()) == []


EXPORT = [sys.executable, "-c", "from catdog.export.cli import main; main()"]


@pytest.mark.skipif(available() is not None, reason=f"no real full disk here: {available()}")
def test_full_disk_is_one_line_and_the_previous_export_is_kept(ckpt_factory, photo_dir, tmp_path):
    """A real ENOSPC (tests/testkit/fulldisk.py). torch.jit.save to a path used to abort the whole process
    (C++ terminate, core dump) there; now every artifact write is a Python write that can fail."""
    previous = {"model.onnx": b"the previous export", "export-report.md": b"# previous report\n"}
    out = tmp_path / "full"
    r, left = run_on_full_disk(tmp_path, [*EXPORT, "--ckpt", ckpt_factory(ARCH), "--out", out, "--parity", photo_dir,
                                          "--latency-runs", "1"], previous=previous)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: cannot write to {out}: No space left on device; nothing was published; "
        "free some disk space or choose another --out")
    assert left == previous  # old artifacts untouched, no temp file left


@pytest.mark.slow
def test_ctrl_c_mid_export_publishes_nothing_and_keeps_the_previous_export(ckpt_factory, photo_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"the previous export")
    # interruptible: under a background `pytest &` the child would otherwise inherit SIGINT ignored
    proc = interruptible([*EXPORT, "--ckpt", ckpt_factory(ARCH), "--out", out, "--int8", "--calib", photo_dir,
                          "--fp16", "--bake-preprocess"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob(".model.onnx.*.tmp")):
            assert proc.poll() is None, "export finished before it could be interrupted"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "interrupted; nothing was published" and stdout == ""
    assert [p.name for p in out.iterdir()] == ["model.onnx"]  # staged temps removed, nothing new published
    assert (out / "model.onnx").read_bytes() == b"the previous export"

