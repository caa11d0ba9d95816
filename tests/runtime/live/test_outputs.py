"""Outputs of catdog-runtime (--csv, --save) when the folder is unwritable or the disk is full:
a clear line naming the file, a non-zero exit, and a previous output left exactly as it was.
The full disk is real (a filled tmpfs in a user namespace, see tests/testkit/fulldisk.py)."""

from __future__ import annotations

import sys

import pytest
from testkit.fulldisk import available, run_on_full_disk
from testkit.runtime import run_cli, write_video

needs_full_disk = pytest.mark.skipif(available() is not None, reason=f"no real full disk here: {available()}")


@pytest.fixture
def clip(tmp_path_factory, photos):
    return write_video(tmp_path_factory.mktemp("clip") / "clip.avi", photos, 20)


@pytest.mark.parametrize("flag, name", [("--csv", "results.csv"), ("--save", "out.avi")])
def test_unwritable_output_folder_fails_before_the_run(models, clip, tmp_path, flag, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be")
    r = run_cli(clip, "--model", models["float"], flag, blocker / "sub" / name)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot write to {blocker / 'sub'}: Not a directory; choose a writable folder"
    assert "frame" not in r.stderr  # nothing was classified
    r = run_cli(clip, "--model", models["float"], flag, blocker / name)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == (
        f"error: cannot write to {blocker}: it is a file, not a folder; choose another folder")


def _runtime(*args) -> list:
    return [sys.executable, "-m", "catdog.runtime", *args, "--provider", "cpu"]  # as testkit.runtime.run_cli


@needs_full_disk
def test_csv_on_a_full_disk_keeps_the_previous_file(models, clip, tmp_path):
    old = b"source,label\nyesterday.jpg,cat\n"
    cmd = _runtime(clip, "--model", models["float"], "--csv", tmp_path / "full" / "r.csv")
    r, left = run_on_full_disk(tmp_path, cmd, previous={"r.csv": old})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: cannot write {tmp_path / 'full' / 'r.csv'}: No space left on device; free some disk space")
    assert left == {"r.csv": old}  # old results intact, no temp file left behind


@needs_full_disk
@pytest.mark.parametrize("name, code", [("out.avi", 1), ("out.mp4", 2)])
def test_saved_video_on_a_full_disk_keeps_the_previous_file(models, clip, tmp_path, name, code):
    """OpenCV's writer ignores write errors: without a check the run 'saved' a 0-byte video over
    the previous one and exited 0."""
    old = clip.read_bytes()
    target = tmp_path / "full" / name
    r, left = run_on_full_disk(tmp_path, _runtime(clip, "--model", models["float"], "--save", target),
                               previous={name: old})
    assert r.returncode == code and "Traceback" not in r.stderr, r.stderr
    assert f"cannot write {target}: " in r.stderr and "no space left on the device" in r.stderr
    assert left == {name: old}  # MJPEG .avi: OpenCV's own writer; .mp4: FFmpeg cannot even open it
    if name == "out.avi":  # the writer opened, the run finished, and the summary says what was not saved
        assert "nothing was replaced" in r.stderr and "stopped by" in r.stderr
