"""The CIFAR reader on real files in the published formats (tests/testkit/cifar.py writes them from
real pixels): both versions decode to the same pixels and labels, from a folder or an archive; the
class names are the meta file's; a pickle that would run code is refused and never runs; a
truncated batch and a missing archive are one line each; `prepare cifar10:PATH` writes class folders
that train, export and the runtime take as they are."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from testkit.cifar import (
    CIFAR10_NAMES,
    COARSE_NAMES,
    FINE_NAMES,
    archive,
    make,
    py2_pickle,
    write_cifar10,
    write_cifar100,
)

from catdog.runtime.spine.errors import ConfigError, DataError
from catdog.runtime.spine.folders import scan
from catdog.train.data.cifar import URL, parse_source, read_cifar
from catdog.train.data.prepare import prepare

VERSIONS = ("python", "binary")


@pytest.fixture(scope="module")
def c10(tmp_path_factory):
    """CIFAR-10 of 200 train and 50 test records, both versions, as folders and as archives."""
    root = tmp_path_factory.mktemp("c10")
    made = make(200, 50, 10)
    folders = {v: write_cifar10(root / v, made, v) for v in VERSIONS}
    archives = {v: archive(folders[v], root / f"{v}-archive") for v in VERSIONS}
    return made, folders, archives


@pytest.fixture(scope="module")
def c100(tmp_path_factory):
    root = tmp_path_factory.mktemp("c100")
    made = make(240, 60, len(FINE_NAMES), seed=5)
    folders = {v: write_cifar100(root / v, made, v) for v in VERSIONS}
    archives = {v: archive(folders[v], root / f"{v}-archive") for v in VERSIONS}
    return made, folders, archives


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("form", ["folder", "parent", "archive", "archive-parent"])
def test_cifar10_decodes_to_the_pixels_and_labels_written(c10, version, form):
    made, folders, archives = c10
    path = {"folder": folders[version], "parent": folders[version].parent, "archive": archives[version],
            "archive-parent": archives[version].parent}[form]
    data = read_cifar("cifar10", path)
    assert data.classes == CIFAR10_NAMES
    assert data.train.images.shape == (200, 32, 32, 3) and data.train.images.dtype == np.uint8
    assert np.array_equal(data.train.images, made.train) and np.array_equal(data.train.labels, made.train_labels)
    assert np.array_equal(data.test.images, made.test) and np.array_equal(data.test.labels, made.test_labels)


@pytest.mark.parametrize("version", VERSIONS)
def test_cifar100_fine_and_coarse_labels_and_names(c100, version):
    made, folders, archives = c100
    fine = read_cifar("cifar100", archives[version])
    coarse = read_cifar("cifar100-coarse", folders[version])
    assert fine.classes == FINE_NAMES and coarse.classes == COARSE_NAMES
    for split in ("train", "test"):
        images = getattr(made, split)
        assert np.array_equal(getattr(fine, split).images, images)
        assert np.array_equal(getattr(coarse, split).images, images)
        assert np.array_equal(getattr(fine, split).labels, getattr(made, f"{split}_labels"))
        assert np.array_equal(getattr(coarse, split).labels, made.coarse(split))


def test_one_pixel_is_where_the_record_puts_it(tmp_path):
    """The record is R plane, G plane, B plane, each row-major: byte 1 + 3*1024 - 1 is B at (31, 31)."""
    made = make(10, 10, 2)
    folder = write_cifar10(tmp_path, made, "binary")
    raw = bytearray((folder / "test_batch.bin").read_bytes())
    raw[1 + 32 * 5 + 7] = 11  # record 0, R at row 5, column 7
    raw[1 + 1024 + 32 * 31 + 31] = 22  # G at (31, 31)
    raw[1 + 2048] = 33  # B at (0, 0)
    (folder / "test_batch.bin").write_bytes(bytes(raw))
    img = read_cifar("cifar10", folder).test.images[0]
    assert (img[5, 7, 0], img[31, 31, 1], img[0, 0, 2]) == (11, 22, 33)


def test_class_names_are_the_meta_file_s(c10, tmp_path):
    made, _, _ = c10
    folder = write_cifar10(tmp_path, made, "binary")
    names = [f"kind_{i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n")
    assert read_cifar("cifar10", folder).classes == tuple(names)


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["batch", "inside-the-batch", "meta"])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(c10, tmp_path, where):
    made, _, _ = c10
    folder = write_cifar10(tmp_path, made, "python")
    marker = tmp_path / "ran"
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(RunsCode(control), protocol=2))  # what a plain pickle.load of it does
    assert control.exists()
    evil = pickle.dumps(RunsCode(marker), protocol=2)
    file = folder / ("batches.meta" if where == "meta" else "data_batch_3")
    if where == "inside-the-batch":
        evil = py2_pickle({b"data": made.train[:1].reshape(1, -1), b"labels": [RunsCode(marker)]})
    file.write_bytes(evil)
    with pytest.raises(DataError) as e:
        read_cifar("cifar10", folder)
    assert str(e.value) == (f"{file}: refused: the pickle asks for {os.system.__module__}.system, which no CIFAR "
                            f"file contains (nothing in it was run); use the archive from {URL}")
    assert not marker.exists()


def test_a_truncated_binary_batch_is_one_line_with_the_record_count(c10, tmp_path):
    made, _, _ = c10
    folder = write_cifar10(tmp_path, made, "binary")
    batch = folder / "data_batch_2.bin"
    raw = batch.read_bytes()
    assert len(raw) == 40 * 3073
    batch.write_bytes(raw[:-100])
    with pytest.raises(DataError) as e:
        read_cifar("cifar10", folder)
    assert str(e.value) == (f"{batch}: truncated: {40 * 3073 - 100} bytes are 39 complete records of 3073 bytes "
                            f"and 2973 bytes over; extract it again, or download it from {URL}")


def test_a_truncated_archive_and_missing_files_say_where_to_get_them(c10, tmp_path):
    _, folders, archives = c10
    with pytest.raises(DataError) as e:
        read_cifar("cifar10", tmp_path / "nowhere")
    assert str(e.value) == (f"{tmp_path / 'nowhere'}: does not exist; expected cifar-10-python.tar.gz (or its folder "
                            "cifar-10-batches-py/) or cifar-10-binary.tar.gz (or its folder cifar-10-batches-bin/); "
                            f"download CIFAR-10 from {URL} (nothing is downloaded for you)")
    cut = tmp_path / "cifar-10-python.tar.gz"
    cut.write_bytes(archives["python"].read_bytes()[:5000])
    with pytest.raises(DataError, match=f"^{cut}: not a readable .tar.gz .*download it again from {URL}$"):
        read_cifar("cifar10", cut)
    with pytest.raises(DataError, match=rf"^{archives['python']}: not a CIFAR-100 archive \(no cifar-100-python/"):
        read_cifar("cifar100", archives["python"])
    partial = tmp_path / "partial"
    os.makedirs(partial)
    for f in folders["binary"].iterdir():
        if f.name != "test_batch.bin":
            (partial / f.name).write_bytes(f.read_bytes())
    with pytest.raises(DataError, match=f"^{partial / 'test_batch.bin'}: missing; the CIFAR-10 binary version has "
                                        rf"data_batch_1.bin, .*; extract cifar-10-binary.tar.gz again, or download"):
        read_cifar("cifar10", partial)


def test_the_source_spelling(tmp_path):
    assert parse_source("cifar100-coarse:/data/c") == ("cifar100-coarse", Path("/data/c"))
    assert parse_source(tmp_path) is None
    (tmp_path / "cifar10:x").mkdir()
    assert parse_source(tmp_path / "cifar10:x") is None  # an existing folder is that folder
    with pytest.raises(ConfigError, match="^cifar-10:/x: unknown dataset 'cifar-10'; use cifar10:PATH, "):
        parse_source("cifar-10:/x")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_writes_class_folders_the_same_from_either_version(c10, tmp_path):
    made, folders, archives = c10
    out = tmp_path / "py"
    rep = prepare(f"cifar10:{archives['python']}", out)
    assert (rep.written, rep.existing, rep.bad) == (250, 0, [])
    for split, images, labels in (("train", made.train, made.train_labels), ("test", made.test, made.test_labels)):
        data = scan(out / split)
        assert data.classes == tuple(sorted(CIFAR10_NAMES)) and len(data.samples) == len(labels)
        for i in (0, 7, len(labels) - 1):
            png = out / split / CIFAR10_NAMES[labels[i]] / f"{i:05d}.png"
            assert np.array_equal(cv2.imread(str(png))[:, :, ::-1], images[i])  # lossless, RGB kept
    assert not [p for p in out.rglob(".*")]  # no temp file left behind
    prepare(f"cifar10:{folders['binary']}", tmp_path / "bin")
    assert tree(tmp_path / "bin") == tree(out)
    again = prepare(f"cifar10:{folders['binary']}", out)
    assert (again.written, again.existing) == (0, 250)
    with pytest.raises(ConfigError, match="^--resize does not apply to cifar10"):
        prepare(f"cifar10:{folders['binary']}", out, resize=64)


def cli(module: str, *args, timeout: float = 240) -> subprocess.CompletedProcess:
    code = f"from {module} import main; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_prepare_refuses_a_code_running_pickle_in_one_line(c10, tmp_path):
    made, _, _ = c10
    folder = write_cifar10(tmp_path, made, "python")
    marker = tmp_path / "ran"
    (folder / "test_batch").write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    r = cli("catdog.train.cli", "prepare", f"cifar10:{folder}", tmp_path / "out")
    assert r.returncode == 2 and r.stdout == "" and not marker.exists()
    assert r.stderr.strip().splitlines() == [f"error: {folder / 'test_batch'}: refused: the pickle asks for "
                                             f"{os.system.__module__}.system, which no CIFAR file contains (nothing "
                                             f"in it was run); use the archive from {URL}"]


def test_data_cifar10_path_trains_from_prepare_s_folders_written_once(c10, tmp_path, monkeypatch):
    """--data cifar10:PATH: prepare's own folders in a cache, CIFAR's test batch as validation unless
    --val or --val-fraction says otherwise, read from the archive once."""
    from catdog.train.data import cifar_cache
    from catdog.train.options import TrainOptions
    from catdog.train.recipe import TrainConfig

    _, _, archives = c10
    monkeypatch.setenv("CATDOG_DATA_CACHE", str(tmp_path / "cache"))
    said: list[str] = []

    def opts(given=frozenset({"data"}), **recipe):
        return TrainOptions(TrainConfig(data=f"cifar10:{archives['binary']}", **recipe), given, quiet=True)

    got = cifar_cache.with_cifar(opts(), said.append).recipe
    folder = Path(got.data).parent
    assert (got.data, got.val) == (str(folder / "train"), str(folder / "test")) and folder.parent == tmp_path / "cache"
    assert said == [f"cifar10:{archives['binary']}: 200 train / 50 test images, 10 classes, as class folders in "
                    f"{folder}; validation: CIFAR-10's own test batch (50 images, {folder / 'test'})"]
    prepare(f"cifar10:{archives['python']}", tmp_path / "prepared")
    assert {k: v for k, v in tree(folder).items() if k != "complete.json"} == tree(tmp_path / "prepared")
    monkeypatch.setattr(cifar_cache, "read_cifar", lambda *a: pytest.fail("the cache was written already"))
    assert cifar_cache.with_cifar(opts(val="mine"), said.append).recipe.val == "mine"
    assert said[-1].endswith("validation: --val mine")
    split = cifar_cache.with_cifar(opts(frozenset({"data", "val_fraction"}), val_fraction=0.3), said.append).recipe
    assert split.val is None and said[-1].endswith("validation: a seeded 0.3 of the train split (--val-fraction)")
    assert cifar_cache.with_cifar(opts(), said.append, val=False).recipe.val is None  # cv: folds of train/
    missing = TrainOptions(TrainConfig(data=f"cifar100:{tmp_path / 'none.tar.gz'}"), quiet=True)
    with pytest.raises(DataError, match=f"none.tar.gz: does not exist; expected cifar-100-python.tar.gz .*{URL}"):
        cifar_cache.with_cifar(missing, said.append)


@pytest.mark.slow
def test_cifar10_train_export_runtime_round_trip_labels_are_cifar_s(tmp_path, monkeypatch, train_main):
    """prepare, train and export in this process (each CLI's real processes are tested in its own
    files), the runtime as a user runs it."""
    from testkit.export import cli as export_cli

    made = make(60, 20, 10, seed=3)
    src = archive(write_cifar10(tmp_path / "src", made, "binary"), tmp_path / "dl")
    out = tmp_path / "cifar10"
    r = train_main("prepare", f"cifar10:{src}", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{out}: 80 written, 0 already there, 0 unreadable"
    run = tmp_path / "run"
    monkeypatch.setenv("CATDOG_DATA_CACHE", str(tmp_path / "cache"))  # --data cifar10:PATH, no prepare step
    r = train_main("--data", f"cifar10:{src}", "--arch", "alexnet_cifar", "--arch-kw", "width=0.25",
                   "--epochs", "1", "--batch-size", "8", "--workers", "0", "--out", run, "--no-plots")
    assert r.returncode == 0, r.stderr
    assert "60 train / 20 test images, 10 classes" in r.stderr and "validation: CIFAR-10's own test batch" in r.stderr
    exp = tmp_path / "export"
    assert export_cli("--ckpt", run / "best.pth", "--out", exp, "--parity", out / "test", "--latency-runs", "1") == 0
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", str(out / "test"), "-r", "-m", str(exp / "model.onnx"),
                        "--json", "--provider", "cpu"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(results) == 20 and {x["label"] for x in results} <= set(CIFAR10_NAMES)
    from catdog.export.builders.meta import read_onnx_metadata

    meta = read_onnx_metadata(exp / "model.onnx")
    assert tuple(meta.classes) == tuple(sorted(CIFAR10_NAMES))
    from catdog.train.models.checkpoint import load_checkpoint

    assert meta.spec == load_checkpoint(run / "best.pth").spec and meta.spec.size == 32  # mean/std too
    # any photo: the runtime shrinks it to 32 px through the same preprocess(), and names CIFAR's classes
    r = subprocess.run([sys.executable, "-m", "catdog.runtime", str(Path(__file__).parents[1] / "data" / "dog.jpg"),
                        "-m", str(exp / "model.onnx"), "--topk", "3", "--provider", "cpu"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    head, *rows = [line.split() for line in r.stdout.strip().splitlines()]
    assert head == ["source", "top", "3", "score"] and len(rows) == 3
    assert {row[-2] for row in rows} <= set(CIFAR10_NAMES) and len({row[-2] for row in rows}) == 3
