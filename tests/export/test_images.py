"""Export reads folders with the runtime's one folder reader: hidden `._` files are never
calibration or parity images (nor counted as unreadable), class folders are read recursively,
a folder mixing layouts is refused; calibration and parity samples of one folder never overlap
when it is big enough; and user paths print as typed, whatever brackets they hold."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from testkit.export import CLASSES, cli

from catdog.export.pipeline import ExportOptions, run_export
from catdog.export.verify.images import held_out, load_images
from catdog.runtime.spine.errors import DataError

ARCH = "efficientnet_lite0"


def add_hidden_files(folder: Path, photo: Path) -> None:
    """What macOS leaves on a shared drive: AppleDouble `._` files beside the photos. One is
    garbage bytes (the old reader reported it as unreadable), one a real photo under a hidden
    name (the old reader used it)."""
    (folder / "._cat.1.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    shutil.copy(photo, folder / "._dog.3.jpg")


@pytest.fixture
def hidden_flat(photo_dir, tmp_path) -> Path:
    folder = tmp_path / "flat"
    shutil.copytree(photo_dir, folder)
    add_hidden_files(folder, next(photo_dir.glob("dog.*.jpg")))
    return folder


@pytest.fixture
def hidden_folders(photo_dir, tmp_path) -> Path:
    """The same photos in cat/ and dog/ class folders, hidden files in each, and a hidden folder."""
    root = tmp_path / "folders"
    for p in photo_dir.iterdir():
        label = p.name.split(".")[0]
        (root / label / "sub").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / label / ("sub" if p.name.endswith("8.jpg") else "") / p.name)
    for label in CLASSES:
        add_hidden_files(root / label, next(photo_dir.glob("dog.*.jpg")))
    (root / ".Trashes").mkdir()
    shutil.copy(next(photo_dir.glob("cat.*.jpg")), root / ".Trashes" / "cat.999.jpg")
    return root


def test_hidden_files_are_neither_calibration_nor_parity_images(hidden_flat):
    calib = load_images(hidden_flat, 200)
    parity = load_images(hidden_flat, 100, CLASSES, from_names=True)
    for images in (calib, parity):
        assert len(images.paths) == 12 and images.skipped == ()
        assert not [p for p in images.paths if p.name.startswith(".")]
    assert sorted(parity.labels) == [0] * 6 + [1] * 6 and parity.layout == "flat"


def test_class_folders_are_read_recursively_without_hidden_files(hidden_folders):
    parity = load_images(hidden_folders, 100, CLASSES)  # class folders: labels without --labels-from-names
    assert len(parity.paths) == 12 and parity.skipped == ()
    assert {p.parent.name for p in parity.paths} == {"cat", "dog", "sub"}
    assert all(CLASSES[y] == p.name.split(".")[0] for p, y in zip(parity.paths, parity.labels, strict=True))
    assert len(load_images(hidden_folders, 200).paths) == 12  # calibration: the same 12, unlabelled
    # --labels-from-names asks for labels; class folders still give them (and the report says so)
    assert load_images(hidden_folders, 100, CLASSES, from_names=True).layout == "folders"


def test_calibration_and_parity_samples_of_one_folder_do_not_overlap(hidden_folders):
    calib = load_images(hidden_folders, 5)
    parity = load_images(hidden_folders, 5, CLASSES, skip=5)
    assert len(calib.paths) == len(parity.paths) == 5 and not set(calib.paths) & set(parity.paths)


def test_without_labels_parity_measures_agreement_only(hidden_flat):
    assert load_images(hidden_flat, 100, CLASSES).labels is None  # flat, no --labels-from-names


def test_a_folder_mixing_layouts_is_refused(photo_dir, tmp_path):
    mixed = tmp_path / "mixed"
    (mixed / "cat").mkdir(parents=True)
    for p in photo_dir.iterdir():
        shutil.copy(p, mixed / ("cat" if p.name.startswith("cat") else "") / p.name)
    with pytest.raises(DataError, match="mixes class folders"):
        load_images(mixed, 100, CLASSES, from_names=True)


def test_export_ignores_hidden_files_in_calibration_and_parity(ckpt_factory, hidden_flat, tmp_path):
    opts = ExportOptions(ckpt=ckpt_factory(ARCH), out=tmp_path / "out", calib=hidden_flat, labels_from_names=True,
                         latency_runs=1)
    report = run_export(opts)
    [parity] = report.parity_sets
    assert report.passed and parity.images == 12 and report.skipped_images == parity.skipped_images == []
    assert parity.labels == "file names (--labels-from-names)" and parity.eager_accuracy["n"] == 12
    # parity is a sample of --calib here; 12 calibration images, not 14, and all of them reused
    assert report.notes["parity"].startswith("12 of 12 parity images were also calibration images")


def test_bracketed_paths_print_as_typed(ckpt_factory, photo_dir, tmp_path, capfd):
    """rich markup in a path ([bold], [red], a closing [/x] that used to raise MarkupError) is text."""
    out = tmp_path / "a[" / "x]" / "cat[bold]x[red]"
    code = cli("--ckpt", ckpt_factory(ARCH), "--out", out, "--parity", photo_dir, "--latency-runs", "1")
    err = capfd.readouterr().err
    assert code == 0, err
    assert f"published 2 artifacts to {out}\n" in err
    assert (out / "model.onnx").is_file()


def test_held_out_images_are_neither_calibration_nor_parity_images_nor_their_copies(photo_dir, tmp_path):
    """INT8's choices are made on these: an image used for calibration, or a parity photo even
    under another name, must never be one of them."""
    calib = tmp_path / "calib"
    shutil.copytree(photo_dir, calib)
    parity = sorted(photo_dir.glob("dog.*.jpg"))[:2]  # parity photos in their own folder, copied into calib
    shutil.copy(parity[0], calib / "renamed.jpg")  # and one of them once more, under another name
    used = load_images(calib, 5).paths
    held = held_out(calib, 100, [*used, *parity])
    names = {p.name for p in held.paths}
    excluded = {"renamed.jpg", *(p.name for p in parity), *(p.name for p in used)}
    assert names == {p.name for p in calib.iterdir()} - excluded
    assert len(names) >= 4
    assert len(held.paths) == len(held.images) and held.labels is None
    assert len(held_out(calib, 3, used).paths) == 3  # at most `count`, in the fixed shuffle's order
    assert held_out(calib, 3, used).paths == held_out(calib, 3, used).paths
    assert held_out(calib, 100, list(calib.iterdir())).images == ()  # nothing left: empty, not an error
