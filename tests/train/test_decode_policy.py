"""Training validation, export calibration/parity/held-out images and the runtime all decode through
the spine's read_image with the model's spec: on a photo big enough to be reduced, each stage's
pixels equal the reduced decode (and differ from a full decode, so the check can fail)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from catdog.export.options import ExportOptions
from catdog.export.pipeline import decode_spec
from catdog.export.verify.images import held_out, load_images
from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.data.datasets import ImageDataset

SPEC = PreprocessSpec(size=224, resize=256, interpolation="bicubic")


@pytest.fixture(scope="module")
def big_folder(data_dir, tmp_path_factory) -> Path:
    """cat/ and dog/ with two 1600x1200 JPEGs each (4x the Kaggle photos: decoded at 1/4 for 256 px)."""
    root = tmp_path_factory.mktemp("bigset")
    for name in ("cat.168.jpg", "cat.193.jpg", "dog.169.jpg", "dog.319.jpg"):
        (root / name.split(".")[0]).mkdir(exist_ok=True)
        img = cv2.resize(cv2.imread(str(data_dir / name)), (1600, 1200), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(root / name.split(".")[0] / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def test_every_stage_decodes_with_the_spines_reduced_decode(big_folder):
    data = scan(big_folder)
    paths = [Path(p) for p, _ in data.samples]
    reduced = {p: read_image(p, SPEC) for p in paths}
    full = {p: read_image(p) for p in paths}
    assert all(reduced[p].shape[:2] == (300, 400) and full[p].shape[:2] == (1200, 1600) for p in paths)

    # Training validation: the same tensor as preprocess(reduced decode)...
    val = ImageDataset(data, SPEC, train=False)
    for i, p in enumerate(paths):
        x, _ = val[i]
        assert np.array_equal(x.numpy(), preprocess(reduced[p], SPEC)[0])
        assert not np.array_equal(x.numpy(), preprocess(full[p], SPEC)[0])

    # ...export's parity/calibration and held-out readers (with the options' decode policy)...
    opts = ExportOptions(ckpt=Path("best.pth"), out=Path("out"))
    par = load_images(big_folder, 4, ("cat", "dog"), spec=decode_spec(opts, SPEC))
    held = held_out(big_folder, 4, exclude=[], spec=decode_spec(opts, SPEC))
    for s in (par, held):
        assert len(s.images) == 4
        for p, img in zip(s.paths, s.images, strict=True):
            assert np.array_equal(img, reduced[Path(p)])

    # ...and export --full-decode gets the full-size pixels, as catdog-runtime --full-decode does.
    full_opts = ExportOptions(ckpt=Path("best.pth"), out=Path("out"), full_decode=True)
    par_full = load_images(big_folder, 4, ("cat", "dog"), spec=decode_spec(full_opts, SPEC))
    assert all(np.array_equal(img, full[Path(p)]) for p, img in zip(par_full.paths, par_full.images, strict=True))


def test_training_augmentation_decodes_at_full_size(big_folder, monkeypatch):
    """Random crops may zoom in: the training side asks the spine for every pixel (no spec)."""
    import catdog.train.data.datasets as train_data

    asked = []

    def spy(path, spec=None):
        asked.append(spec)
        return read_image(path, spec)

    monkeypatch.setattr(train_data, "read_image", spy)
    data = scan(big_folder)
    x, _ = ImageDataset(data, SPEC, train=True)[0]
    x_val, _ = ImageDataset(data, SPEC, train=False)[0]
    assert x.shape == x_val.shape == (3, 224, 224)
    assert asked == [None, SPEC]
