"""catdog-export's --out folder loses nothing and mixes nothing: an older export's files
are never left mixed, unmentioned, with a new export's; a gate failure never overwrites the report
of the export beside it; a failed export leaves no empty folder it made; a broken checkpoint is one
line that says what it is, with no library warning on stderr."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from testkit.export import cli

from catdog.runtime.spine.errors import GateError

ARCH = "efficientnet_lite0"
EXPORT = [sys.executable, "-c", "from catdog.export.cli import main; main()"]
REPORTS = ["export-report.json", "export-report.md"]
FAILED = ["export-report.failed.json", "export-report.failed.md"]


def export(ckpt: Path, out: Path, photo_dir: Path, *args) -> int:
    return cli("--ckpt", ckpt, "--out", out, "--parity", photo_dir, "--labels-from-names", "--latency-runs", "1",
               *args)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def last_line(capfd) -> str:
    err = capfd.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    return err[-1]


def test_an_older_export_s_artifact_is_moved_aside_and_reported(ckpt_factory, photo_dir, tmp_path, capfd):
    out = tmp_path / "e"
    out.mkdir()
    (out / "model.int8.onnx").write_text("OLD\n")  # an older export's INT8; this one builds no INT8
    assert export(ckpt_factory(ARCH), out, photo_dir) == 0
    [when] = (out / "stale").iterdir()
    moved = f"stale/{when.name}/model.int8.onnx"
    assert sorted(p.name for p in out.iterdir()) == [*REPORTS, "model.onnx", "model.ts", "stale"]
    assert (out / moved).read_text() == "OLD\n"  # moved, never deleted
    assert last_line(capfd) == (f"published 2 artifacts to {out}; moved 1 stale file(s) of an older export aside "
                                f"to {out / 'stale' / when.name}: model.int8.onnx")
    report = json.loads((out / "export-report.json").read_text())
    assert report["stale"] == [{"file": "model.int8.onnx", "moved_to": moved}] and report["published"]
    md = (out / "export-report.md").read_text()
    assert f"`model.int8.onnx`, left by an older export, is not this export's: moved aside to `{moved}`" in md
    assert "1 stale file(s) of an older export moved aside" in md


def test_a_gate_failure_keeps_the_earlier_export_and_its_report(ckpt_factory, photo_dir, tmp_path, capfd):
    out = tmp_path / "e"
    ckpt = ckpt_factory(ARCH)
    assert export(ckpt, out, photo_dir) == 0
    good = tree(out)
    capfd.readouterr()
    assert export(ckpt, out, photo_dir, "--gate", "onnx.logit=-1") == GateError.exit_code
    line = last_line(capfd)
    assert line.startswith("error: onnx: max_abs_logit ") and line.endswith(
        f" fails <= -1 (gate onnx.logit) on {photo_dir}; nothing published, see {out / FAILED[1]} (the earlier "
        f"export in {out} and its export-report.md are kept); override with --gate NAME=VALUE or --allow-gate-failure")
    after = tree(out)
    assert {k: v for k, v in after.items() if k not in FAILED} == good  # artifacts and their report unchanged
    failed = json.loads(after[FAILED[0]])
    assert not failed["passed"] and not failed["published"] and "NOT published" in after[FAILED[1]].decode()
    # The next good export publishes; the failed attempt's report is not left beside it either.
    assert export(ckpt, out, photo_dir) == 0
    [when] = (out / "stale").iterdir()
    assert sorted(p.name for p in when.iterdir()) == FAILED
    assert json.loads((out / "export-report.json").read_text())["stale"] == [
        {"file": n, "moved_to": f"stale/{when.name}/{n}"} for n in FAILED]


def test_a_gate_failure_in_a_new_folder_writes_the_report_under_its_own_name(ckpt_factory, photo_dir, tmp_path,
                                                                           capfd):
    out = tmp_path / "fresh"
    assert export(ckpt_factory(ARCH), out, photo_dir, "--gate", "onnx.logit=-1") == GateError.exit_code
    assert f"nothing published, see {out / 'export-report.md'}; override" in last_line(capfd)
    assert sorted(p.name for p in out.iterdir()) == REPORTS  # no earlier export: nothing to keep apart


@pytest.mark.parametrize("nested", [False, True], ids=["out", "out-and-parents"])
def test_a_failed_export_removes_the_empty_folder_it_created(ckpt_factory, photo_dir, tmp_path, capfd, nested):
    bad = tmp_path / "nc7.pth"
    torch.save({**torch.load(ckpt_factory(ARCH), weights_only=True), "arch_kwargs": {"num_classes": 7}}, bad)
    out = tmp_path / "a" / "b" / "out" if nested else tmp_path / "out"
    assert cli("--ckpt", bad, "--out", out, "--parity", photo_dir) == 2
    assert last_line(capfd) == (f"error: {bad}: arch_kwargs has num_classes=7 but the checkpoint lists 2 classes "
                                "['cat', 'dog']; the two must agree: remove num_classes from arch_kwargs (the "
                                "classes list sets the count)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nc7.pth"]  # out (and a/b) made by the export: gone


def test_a_failed_export_keeps_a_folder_the_user_had(tmp_path, photo_dir, capfd):
    (tmp_path / "mine").mkdir()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n")
    for out in ("mine", "kept", "kept/new"):
        assert cli("--ckpt", tmp_path / "missing.pth", "--out", tmp_path / out, "--parity", photo_dir) == 2
    assert (tmp_path / "mine").is_dir() and (tmp_path / "kept" / "notes.txt").read_text() == "mine\n"
    assert not (tmp_path / "kept" / "new").exists()


def test_num_classes_in_arch_kwargs_that_agrees_is_accepted(ckpt_factory, photo_dir, tmp_path):
    ok = tmp_path / "nc2.pth"
    ckpt = torch.load(ckpt_factory(ARCH), weights_only=True)  # the file's own dict, to re-save changed
    torch.save({**ckpt, "arch_kwargs": {"num_classes": 2}}, ok)
    assert export(ok, tmp_path / "out", photo_dir) == 0 and (tmp_path / "out" / "model.onnx").is_file()


class SystemCall:
    """Unpickling this would run a shell command: the pickled-code case, which must stay refused."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _run(ckpt: Path, out: Path, photo_dir: Path) -> subprocess.CompletedProcess:
    # A real process: pytest's own warning capture would hide a warning that leaks to stderr.
    return subprocess.run([*EXPORT, "--ckpt", str(ckpt), "--out", str(out), "--parity", str(photo_dir)],
                          capture_output=True, text=True, timeout=120)


def test_random_bytes_are_not_a_checkpoint_and_no_warning_leaks(tmp_path, photo_dir):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80" + bytes(range(222, 256)) + os.urandom(4000))  # looks like a pickle's first byte
    r = _run(junk, tmp_path / "out", photo_dir)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"error: {junk}: not a checkpoint: corrupt, truncated or not a PyTorch file (UnpicklingError); "
        "pass a best.pth / last.pth from catdog-train"], r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_pickle_that_calls_os_system_is_still_refused_as_code(tmp_path, photo_dir, how):
    marker, evil = tmp_path / "code-ran", tmp_path / "evil.pth"
    payload = {"format": "catdog-checkpoint", "arch": SystemCall(marker)}
    if how == "torch.save":
        torch.save(payload, evil)
    else:  # a legacy raw pickle: starts with \x80 as the random bytes above do
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    r = _run(evil, tmp_path / "out", photo_dir)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "refused: the file carries pickled code" in r.stderr and not marker.exists()
