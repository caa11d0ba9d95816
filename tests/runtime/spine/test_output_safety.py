"""Outputs never destroy inputs or protected files, and are checked before the first photo: --csv
or --save naming an input, a read-only file, a folder, or a path through a folder that does not
exist. Real files, real runs of the CLI."""

from __future__ import annotations

import os
import stat

import pytest
from testkit.runtime import copy_photos, run_cli, write_video


@pytest.fixture
def folder(tmp_path, photos):
    return copy_photos(tmp_path / "in", photos, 3)


def _refused(r, *words):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), last
    assert "provider:" not in r.stderr  # refused before the model was even opened
    return last


def test_csv_over_an_input_photo_is_refused_and_the_photo_kept(models, folder):
    photo = sorted(folder.iterdir())[0]
    before = photo.read_bytes()
    _refused(run_cli(photo, "--model", models["float"], "--csv", photo), "--csv", "is one of the inputs")
    # another spelling of the same file, and a folder run that lists it
    _refused(run_cli(folder, "--model", models["float"], "--csv", folder / ".." / folder.name / photo.name),
             "is one of the inputs")
    assert photo.read_bytes() == before


def test_save_over_the_input_video_is_refused_and_the_video_kept(models, photos, tmp_path):
    clip = write_video(tmp_path / "in.avi", photos, 6)
    link = tmp_path / "link.avi"
    link.symlink_to(clip)
    before = clip.read_bytes()
    for target in (clip, link):
        _refused(run_cli(clip, "--model", models["float"], "--save", target), "--save", "is one of the inputs")
    assert clip.read_bytes() == before


@pytest.mark.parametrize("mode", [0o444, 0o000])
def test_read_only_csv_is_refused_and_left_as_it_was(models, folder, tmp_path, mode):
    out = tmp_path / "ro.csv"
    out.write_text("keep me\n")
    out.chmod(mode)
    try:
        _refused(run_cli(folder, "--model", models["float"], "--csv", out), "is read-only", "chmod u+w")
        assert stat.S_IMODE(out.stat().st_mode) == mode
        out.chmod(0o644)
        assert out.read_text() == "keep me\n"
    finally:
        out.chmod(0o644)


def test_a_replaced_csv_keeps_its_permission_bits(models, folder, tmp_path):
    out = tmp_path / "private.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    r = run_cli(folder, "--model", models["float"], "--csv", out)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("source,") and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_csv_naming_a_folder_fails_before_the_first_photo(models, folder, tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    last = _refused(run_cli(folder, "--model", models["float"], "--csv", target, "--json"), "is a folder")
    assert str(target / "results.csv") in last
    assert list(target.iterdir()) == []


def test_csv_path_through_a_missing_folder_makes_no_stray_folder(models, folder, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli(folder, "--model", models["float"], "--csv", "a/../../b.csv", cwd=work)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b.csv").is_file()  # where the path leads
    assert list(work.iterdir()) == []  # and no a/ left behind on the way


def test_error_rows_are_as_wide_as_the_header(models, folder, tmp_path):
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "o.csv"
    r = run_cli(folder, "--model", models["float"], "--csv", out)
    assert r.returncode == 1
    import csv

    rows = list(csv.reader(out.open()))
    assert {len(row) for row in rows} == {len(rows[0])} and len(rows[0]) == 7
    assert any(row[4] and "broken.jpg" in row[4] for row in rows[1:])


def test_outputs_are_checked_on_a_writable_spot_even_as_root(models, folder, tmp_path):
    """Root ignores mode bits, so the check reads them itself (os.access would say yes)."""
    out = tmp_path / "ro.csv"
    out.write_text("x\n")
    out.chmod(0o444)
    try:
        if os.geteuid() == 0:
            assert os.access(out, os.W_OK)  # what a check based on access() would have trusted
        _refused(run_cli(folder, "--model", models["float"], "--csv", out), "is read-only")
    finally:
        out.chmod(0o644)


@pytest.mark.parametrize("flag", ["--csv", "--save"])
def test_an_output_over_the_model_is_refused_and_the_model_kept(models, folder, photos, tmp_path, flag):
    """Issue 32 #11: every file the run reads is protected, not only the images: the model too,
    by any spelling (a symlink to it included)."""
    model = tmp_path / "m.onnx"
    model.write_bytes(models["float"].read_bytes())
    link = tmp_path / "link.onnx"
    link.symlink_to(model)
    before = model.read_bytes()
    source = folder if flag == "--csv" else write_video(tmp_path / "in.avi", photos, 6)
    for target in (model, link):
        _refused(run_cli(source, "--model", model, flag, target), flag, "is one of the inputs", str(model))
    assert model.read_bytes() == before


def test_csv_over_the_labels_file_is_refused_and_the_labels_kept(models, folder, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    _refused(run_cli(folder, "--model", models["nometa"], "--labels", labels, "--csv", labels),
             "--csv", "is one of the inputs", str(labels))
    assert labels.read_text() == "cat\ndog\n"
    r = run_cli(folder, "--model", models["nometa"], "--labels", labels)  # still a good labels file
    assert r.returncode == 0, r.stderr


def test_a_failed_run_leaves_no_output_folder_it_made(photos, folder, tmp_path):
    """Issue 32 #15: a run that fails (here: a model that is not one) leaves no empty folder behind
    for its --csv or --save; a run that succeeds makes the folders it needs."""
    bad = tmp_path / "bad.onnx"
    bad.write_text("# not a model\n")
    clip = write_video(tmp_path / "in.avi", photos, 6)
    for source, flag, target in ((folder, "--csv", "leftover/deep/x.csv"), (clip, "--save", "leftv/x.avi")):
        r = run_cli(source, "--model", bad, flag, tmp_path / target)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / target.split("/")[0]).exists(), target
    r = run_cli(folder, "--model", "fp32", "--csv", tmp_path / "leftover/deep/x.csv")
    assert r.returncode == 0 and (tmp_path / "leftover/deep/x.csv").is_file(), r.stderr


def test_csv_over_any_file_an_option_reads_is_refused(photos, tmp_path):
    """Not a list of flags: every path option that is not an output (opt(..., writes=True)) is an
    input, so a file option added later (here --token-file) is protected without a word here."""
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    token.chmod(0o600)
    _refused(run_cli(photos[0], "--model", "fp32", "--serve", "127.0.0.1:0", "--token-file", token, "--csv", token),
             "--csv", "is one of the inputs")
    assert token.read_text() == "0123456789abcdef0123456789abcdef\n"
