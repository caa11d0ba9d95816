"""Training data and options that used to train the wrong model silently (issue 32 #17-#19): a class
whose every image is unreadable, a photo reached under two classes through a symlink, a mistyped
--arch-kw. Each is one line, exit 2, and no run folder; real photos, the real catdog-train CLI."""

from __future__ import annotations

import pytest

from catdog.runtime.spine.errors import ConfigError, DataError
from catdog.runtime.spine.folders import scan
from catdog.train.loop.fit import resolve_arch
from catdog.train.recipe import TrainConfig

TINY = ["--arch", "mobilenet_v3_small", "--size", "32", "--epochs", "1", "--batch-size", "4", "--workers", "0",
        "--quiet", "--no-plots"]


def _classes(root, small_flat, broken: str | None = None):
    """cat/ and dog/ class folders of the small photos; every file of `broken` replaced by text."""
    for p in sorted(small_flat.iterdir()):
        cls = p.name.split(".")[0]
        (root / cls).mkdir(parents=True, exist_ok=True)
        dst = root / cls / p.name
        if cls == broken:
            dst.write_text("not a photo\n")
        else:
            dst.write_bytes(p.read_bytes())
    return root


def _refused(r, *words) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and all(w in lines[0] for w in words), r.stderr
    return lines[0]


def test_a_class_with_no_readable_image_is_refused(train_main, small_flat, tmp_path):
    """#17: dog/ holding only unreadable files trained a model that never saw a dog (exit 0)."""
    data = _classes(tmp_path / "data", small_flat, broken="dog")
    r = train_main("--data", data, "--out", tmp_path / "run", *TINY)
    _refused(r, "'dog'", "no readable image", str(data / "dog"))
    assert not (tmp_path / "run").exists()


def test_a_class_with_some_unreadable_images_still_trains(train_main, small_flat, tmp_path):
    """Unreadable files beside readable ones stay what they were: skipped and reported, not fatal."""
    data = _classes(tmp_path / "data", small_flat)
    (data / "dog" / "broken.jpg").write_text("not a photo\n")
    r = train_main("--data", data, "--out", tmp_path / "run", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]


def test_an_image_reached_under_two_classes_is_refused(train_main, small_flat, tmp_path):
    """#18: `ln -s ../dog data/cat/more` put every dog photo in the cat class too."""
    data = _classes(tmp_path / "data", small_flat)
    (data / "cat" / "more").symlink_to("../dog", target_is_directory=True)
    with pytest.raises(DataError) as e:
        scan(data)
    msg = str(e.value)
    assert "under two classes" in msg and str(data / "cat" / "more") in msg and str(data / "dog") in msg, msg
    r = train_main("--data", data, "--out", tmp_path / "run", *TINY)
    _refused(r, "under two classes", "cat", "dog")
    assert not (tmp_path / "run").exists()


def test_a_file_link_into_another_class_is_refused_and_a_link_within_one_is_not(small_flat, tmp_path):
    data = _classes(tmp_path / "data", small_flat)
    dog = sorted((data / "dog").iterdir())[0]
    (data / "cat" / "also_a_cat.jpg").symlink_to(dog)
    with pytest.raises(DataError, match="under two classes"):
        scan(data)
    (data / "cat" / "also_a_cat.jpg").unlink()
    (data / "dog" / "again.jpg").symlink_to(dog)  # the same photo twice in its own class: a weight, not a lie
    assert scan(data).counts() == {"cat": 6, "dog": 7}


def test_a_mistyped_arch_kw_is_refused_with_the_known_ones(train_main, small_flat, tmp_path):
    """#19: `--arch-kw widht=0.25` trained a full-width model and stored the typo in the checkpoint."""
    r = train_main("--data", small_flat, "--out", tmp_path / "run", *TINY, "--arch-kw", "dropuot=0.1")
    _refused(r, "--arch-kw dropuot", "mobilenet_v3_small", "known: dropout")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"--arch-kw widht: alexnet_s0 takes no such option; known: dropout, width"):
        resolve_arch(TrainConfig(arch="alexnet_s0", arch_kwargs={"widht": 0.25}))
    assert resolve_arch(TrainConfig(arch="alexnet_s0", arch_kwargs={"width": 0.25}))[1] == {"width": 0.25}


def test_a_read_only_run_file_is_refused_before_an_epoch(train_main, small_flat, tmp_path):
    """#20's rule for training: a --resume into a run whose best.pth is read-only used to train an
    epoch and then fail (or, with no better epoch, never notice): now refused before any work."""
    run = tmp_path / "run"
    assert train_main("--data", small_flat, "--out", run, *TINY).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    (run / "best.pth").chmod(0o444)
    try:
        r = train_main("--resume", run, "--epochs", "2", "--quiet")
        _refused(r, str(run / "best.pth"), "is read-only", "chmod u+w")
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    finally:
        (run / "best.pth").chmod(0o644)
