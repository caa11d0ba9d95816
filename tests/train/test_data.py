"""Dataset layouts (read by the runtime's one folder reader), the seeded split, and the two input
paths (train augmentation, val = spine)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from catdog.runtime.spine.errors import ConfigError, DataError
from catdog.runtime.spine.folders import flat_label, scan
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess
from catdog.train.data.datasets import ImageDataset, collate, make_loader, split, train_transform
from catdog.train.models import get_entry

SPEC = get_entry("mobilenet_v3_small").spec.with_(size=48, resize=56)


def test_flat_layout(small_flat):
    data = scan(small_flat)
    assert data.layout == "flat"
    assert data.classes == ("cat", "dog")
    assert data.counts() == {"cat": 6, "dog": 6}
    assert all((y == 0) == ("cat." in p) for p, y in data.samples)


def test_folder_layout_any_class_count(small_folders):
    data = scan(small_folders)
    assert data.layout == "folders"
    assert data.classes == ("apple", "mango", "zebra")  # sorted, stable
    assert data.counts() == {"apple": 4, "mango": 4, "zebra": 4}


def test_flat_label_rules():
    assert flat_label("cat.12.jpg") == "cat"
    assert flat_label("Dog.7.JPG") == "dog"
    assert flat_label("photo.jpg") is None
    assert flat_label("12.cat.jpg") is None


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no images"):
        scan(tmp_path)


def test_one_class(tmp_path, small_flat):
    for p in sorted(small_flat.glob("cat.*"))[:3]:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    with pytest.raises(DataError, match="only one class"):
        scan(tmp_path)


def test_unknown_layout(tmp_path, small_flat):
    (tmp_path / "IMG_0001.jpg").write_bytes(next(small_flat.glob("cat.*")).read_bytes())
    with pytest.raises(DataError, match="unknown layout.*IMG_0001.jpg"):
        scan(tmp_path)


def test_mixed_layout(tmp_path, small_flat):
    (tmp_path / "cat").mkdir()
    src = sorted(small_flat.glob("cat.*"))
    (tmp_path / "cat" / src[0].name).write_bytes(src[0].read_bytes())
    (tmp_path / src[1].name).write_bytes(src[1].read_bytes())
    with pytest.raises(DataError, match="mixes class folders"):
        scan(tmp_path)


def _class_folders(root, small_folders, empty=("bird",)):
    for c in ("apple", "mango"):
        shutil.copytree(small_folders / c, root / c)
    for c in empty:
        (root / c).mkdir()
    return root


def test_an_empty_class_folder_is_refused_when_the_folders_define_the_classes(tmp_path, small_folders):
    """An empty bird/ beside apple/ and mango/ used to vanish: a 2-class model, the class list its only trace."""
    root = _class_folders(tmp_path, small_folders)
    (root / "bird" / "notes.txt").write_text("not an image\n")
    (root / "bird" / "._x.jpg").write_bytes(b"AppleDouble")  # hidden: never an image
    with pytest.raises(DataError) as e:
        scan(root)
    assert str(e.value) == (f"{root / 'bird'}: class folder has no images (.jpg, .jpeg, .png, .bmp, .webp, .tif, "
                            ".tiff), so the classes would be only the other 2; add its images or remove the folder")


def test_several_empty_class_folders_are_named(tmp_path, small_folders):
    root = _class_folders(tmp_path, small_folders, empty=("bird", "fish"))
    with pytest.raises(DataError, match=r": class folders bird, fish have no images .* only the other 2; add their "):
        scan(root)


def test_an_empty_folder_changes_nothing_where_the_classes_are_fixed(tmp_path, small_folders, small_flat):
    """A model's classes (parity, evaluation, --val) fix the labels; and a flat folder's subfolders are no classes."""
    root = _class_folders(tmp_path / "folders", small_folders)
    assert scan(root, ["apple", "mango"]).counts() == {"apple": 4, "mango": 4}
    flat = tmp_path / "flat"
    shutil.copytree(small_flat, flat)
    (flat / "thumbs").mkdir()
    assert scan(flat).counts() == {"cat": 6, "dog": 6}


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        scan(tmp_path / "missing")


def test_val_classes_must_be_known(small_flat, small_folders):
    with pytest.raises(DataError, match="has 3 classes.*model has 2"):
        scan(small_folders, scan(small_flat).classes)


def test_split_is_seeded_stratified_and_disjoint(small_flat):
    data = scan(small_flat)
    a_train, a_val = split(data, 0.2, seed=0)
    b_train, b_val = split(data, 0.2, seed=0)
    assert (a_train.samples, a_val.samples) == (b_train.samples, b_val.samples)
    assert not set(a_train.samples) & set(a_val.samples)
    assert sorted(a_train.samples + a_val.samples) == sorted(data.samples)
    assert a_val.counts() == {"cat": 1, "dog": 1}  # 20% of 6, per class
    others = {split(data, 0.2, seed=s)[1].samples for s in range(1, 6)}
    assert others - {a_val.samples}, "different seeds must give different splits"


def test_val_path_is_the_spine_preprocess(small_flat):
    data = scan(small_flat)
    ds = ImageDataset(data, SPEC, train=False)
    x, y = ds[0]
    ref = preprocess(read_image(data.samples[0][0]), SPEC)[0]
    assert y == data.samples[0][1]
    assert np.array_equal(x.numpy(), ref)


def test_train_augmentation_shape_and_normalization(small_flat):
    ds = ImageDataset(scan(small_flat), SPEC, train=True)
    torch.manual_seed(0)
    x, _ = ds[3]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    # normalized with the spec's mean/std: values span roughly [-mean/std, (1-mean)/std]
    lo = -max(SPEC.mean[i] / SPEC.std[i] for i in range(3))
    hi = max((1 - SPEC.mean[i]) / SPEC.std[i] for i in range(3))
    assert lo - 1e-4 <= float(x.min()) and float(x.max()) <= hi + 1e-4
    assert float(x.std()) > 0.1


def test_bgr_spec_flips_channels(small_flat):
    bgr = SPEC.with_(channel_order="BGR", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    rgb = SPEC.with_(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    data = scan(small_flat)
    torch.manual_seed(1)
    xb, _ = ImageDataset(data, bgr, train=True)[0]
    torch.manual_seed(1)
    xr, _ = ImageDataset(data, rgb, train=True)[0]
    assert torch.allclose(xb, xr.flip(0))


def test_corrupt_file_is_dropped_not_fatal(flat_copy):
    (flat_copy / "cat.999.jpg").write_bytes(b"not a jpeg at all")
    (flat_copy / "dog.998.jpg").write_bytes(next(flat_copy.glob("dog.*")).read_bytes()[:200])  # truncated
    data = scan(flat_copy)
    loader = make_loader(ImageDataset(data, SPEC, train=False), 4, 0, shuffle=False, seed=0)
    seen, bad = 0, []
    for _, y, b in loader:
        seen += len(y)
        bad += b
    assert seen == 12
    assert len(bad) == 2 and any("cat.999.jpg" in m for m in bad) and any("dog.998.jpg" in m for m in bad)


def test_collate_of_only_bad_items():
    x, y, bad = collate([(None, "a: broken"), (None, "b: broken")])
    assert x.numel() == 0 and len(y) == 0 and bad == ["a: broken", "b: broken"]


def test_area_is_refused_by_the_training_augmentation(small_flat):
    """torchvision has no "area" resize: it used to train with bilinear, silently."""
    area = SPEC.with_(interpolation="area")
    with pytest.raises(ConfigError, match="spec interpolation 'area': torchvision's augmentation has no 'area'"):
        train_transform(area)
    with pytest.raises(ConfigError, match="'area'"):
        ImageDataset(scan(small_flat), area, train=True)
    ImageDataset(scan(small_flat), area, train=False)  # validation is the spine's preprocess, which has area
    for name in ("nearest", "bilinear", "bicubic"):
        train_transform(SPEC.with_(interpolation=name))


def test_alexnet_cifar_trains_with_its_declared_interpolation():
    entry = get_entry("alexnet_cifar")
    assert entry.spec.interpolation == "area"  # inference: OpenCV's area filter for the big downscale
    assert entry.train_spec(entry.spec) == entry.spec.with_(interpolation="bilinear")
    assert entry.train_spec(entry.spec.at_size(48)).size == 48
    mobile = get_entry("mobilenet_v3_small")
    assert mobile.train_spec(mobile.spec) is mobile.spec
