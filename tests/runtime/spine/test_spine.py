"""The spine: PreprocessSpec round trip, the one preprocess(), metadata schema, atomic writes."""

import json
import os
import stat

import numpy as np
import pytest

from catdog.runtime.spine.errors import InputError, MetadataError, OutputError
from catdog.runtime.spine.fileio import atomic_path, atomic_write
from catdog.runtime.spine.images import decode_image, header_size, read_image
from catdog.runtime.spine.metadata import METADATA_KEY, SCHEMA_VERSION, ModelMetadata, from_metadata_map
from catdog.runtime.spine.preprocess import normalize, preprocess, preprocess_batch, resize_crop
from catdog.runtime.spine.spec import PreprocessSpec


def test_spec_json_round_trip():
    spec = PreprocessSpec(size=32, resize=36, interpolation="bicubic", mean=(0.5, 0.5, 0.5), channel_order="BGR")
    assert PreprocessSpec.from_json(spec.to_json()) == spec


BAD_SPECS = [{"size": 0}, {"interpolation": "lanczos9"}, {"resize": 100, "size": 224}, {"std": (1, 0, 1)}]


@pytest.mark.parametrize("bad", BAD_SPECS)
def test_spec_rejects_bad_values(bad):
    with pytest.raises(MetadataError):
        PreprocessSpec(**bad)


def test_spec_rejects_unknown_field():
    with pytest.raises(MetadataError, match="unknown fields"):
        PreprocessSpec.from_dict({"size": 224, "gamma": 2.2})


def test_preprocess_shape_geometry_and_values(dog_jpg):
    img = read_image(dog_jpg)
    spec = PreprocessSpec(size=224, resize=256, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x = preprocess(img, spec)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    assert 0.0 <= x.min() and x.max() <= 1.0
    # Channel order: RGB spec puts OpenCV's red (index 2) first.
    crop = resize_crop(img, spec)
    np.testing.assert_allclose(x[0, 0], crop[:, :, 0] / 255.0, atol=1e-6)
    bgr = resize_crop(img, spec.with_(channel_order="BGR"))
    np.testing.assert_array_equal(bgr[:, :, ::-1], crop)


def test_normalize_is_per_channel_textbook_formula(dog_jpg):
    spec = PreprocessSpec(size=64, resize=72, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    crops = np.stack([resize_crop(read_image(dog_jpg), spec), resize_crop(read_image(dog_jpg)[::-1], spec)])
    x = normalize(crops, spec)
    assert x.shape == (2, 3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    for c in range(3):
        want = (crops[..., c] / 255.0 - spec.mean[c]) / spec.std[c]
        np.testing.assert_allclose(x[:, c], want, atol=2e-6)


def test_preprocess_matches_torchvision_center_crop_rounding():
    # 300x200 (w x h) -> shorter side 256 -> 384x256 -> centered 224 crop starting at x=80, y=16.
    img = np.zeros((200, 300, 3), np.uint8)
    img[:, 150:] = 255
    spec = PreprocessSpec(size=224, resize=256, interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1))
    crop = resize_crop(img, spec)
    assert crop.shape == (224, 224, 3)
    assert crop[:, 111].max() == 0 and crop[:, 112].min() == 255  # the edge sits mid-crop


def test_preprocess_accepts_gray_alpha_16bit():
    spec = PreprocessSpec(size=16, resize=16)
    for img in (np.zeros((20, 30), np.uint8), np.zeros((20, 30, 4), np.uint8), np.zeros((20, 30, 3), np.uint16)):
        assert preprocess(img, spec).shape == (1, 3, 16, 16)


def test_preprocess_batch_equals_single(dog_jpg):
    img = read_image(dog_jpg)
    spec = PreprocessSpec(size=64, resize=72)
    batch = preprocess_batch([img, img[::-1]], spec)
    np.testing.assert_array_equal(batch[0], preprocess(img, spec)[0])
    assert batch.shape == (2, 3, 64, 64)


def test_metadata_round_trip_and_newer_schema():
    meta = ModelMetadata(classes=("cat", "dog"), spec=PreprocessSpec(), arch="resnet18", accuracy={"val_acc": 0.99})
    again = from_metadata_map({METADATA_KEY: meta.to_json()}, "m.onnx")
    assert again == meta
    newer = dict(meta.to_dict(), schema_version=SCHEMA_VERSION + 2)
    with pytest.raises(MetadataError, match=f"newer catdog-edge \\(schema {SCHEMA_VERSION + 2}"):
        ModelMetadata.from_json(json.dumps(newer), "m.onnx")
    with pytest.raises(MetadataError, match="not valid JSON"):
        ModelMetadata.from_json("{'classes': __import__('os')}", "m.onnx")
    assert from_metadata_map({}, "m.onnx") is None


def test_decode_errors_name_the_file(tmp_path, dog_jpg):
    with pytest.raises(InputError, match="empty file"):
        decode_image(b"", "x.jpg")
    with pytest.raises(InputError, match="x.jpg: not a readable image"):
        decode_image(b"hello, not a jpeg", "x.jpg")
    data = dog_jpg.read_bytes()
    assert header_size(data) == read_image(dog_jpg).shape[1::-1]
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.jpg")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_honours_umask(tmp_path):
    old = os.umask(0o022)
    try:
        target = atomic_write(tmp_path / "model.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_unwritable_dir_is_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write(blocker / "sub" / "out.json", "data")
