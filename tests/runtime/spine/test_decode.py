"""The spine's reduced JPEG decode: libjpeg's 1/2, 1/4, 1/8 DCT scaling, chosen so the shorter side
never drops below what the model's resize needs; other formats and --full-decode decode at full size.
Real JPEGs made from tests/data photos (upscaled like a phone photo, EXIF-rotated, progressive,
grey, CMYK), real decodes, a real ONNX model and the real CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from testkit.runtime import run_cli, with_exif_orientation

from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.spine.images import decode_image, jpeg_reduction, read_image
from catdog.runtime.spine.preprocess import resize_crop
from catdog.runtime.spine.spec import PreprocessSpec

LITE2 = PreprocessSpec(size=260, resize=293, interpolation="bicubic")
LITE0 = PreprocessSpec(size=224, resize=256, interpolation="bicubic")
SMALL = PreprocessSpec(size=32, resize=36)  # the test models' spec


def _jpeg(img: np.ndarray, **params: int) -> bytes:
    flags = [cv2.IMWRITE_JPEG_QUALITY, 90]
    for k, v in params.items():
        flags += [getattr(cv2, k), v]
    ok, buf = cv2.imencode(".jpg", img, flags)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def big(dog_jpg) -> np.ndarray:
    """A 2400x1800 'phone photo': the dog upscaled with mild noise, as the benchmark fixture does."""
    img = cv2.resize(cv2.imread(str(dog_jpg)), (2400, 1800), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 2.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def big_file(big, tmp_path_factory):
    p = tmp_path_factory.mktemp("big") / "phone.jpg"
    p.write_bytes(_jpeg(big))
    return p


@pytest.mark.parametrize("w, h, spec, factor", [
    (4000, 3000, LITE2, 8), (3000, 4000, LITE2, 8),  # 375 px short side at 1/8 >= 293
    (2400, 1800, LITE2, 4), (2400, 1800, LITE0, 4),  # 225 at 1/8 is too small; 450 at 1/4
    (1200, 900, LITE2, 2), (586, 1000, LITE2, 2),     # 293 exactly at 1/2: allowed
    (585, 1000, LITE2, 1), (500, 375, LITE2, 1),      # a Kaggle photo: decoded as before
    (2048, 2048, LITE0, 8), (2047, 2047, LITE0, 4),   # 256 exactly at 1/8 vs 255
    (4000, 3000, PreprocessSpec(size=224, resize_mode="stretch"), 8),  # stretch needs `size`
    (400, 3000, PreprocessSpec(size=224, resize_mode="stretch"), 1),
])
def test_reduction_factor(w, h, spec, factor):
    assert jpeg_reduction(w, h, spec.min_side) == factor


def test_reduction_is_the_largest_that_never_goes_below_the_resize():
    rng = np.random.default_rng(1)
    for w, h, need in rng.integers(16, 5000, size=(500, 3)):
        f = jpeg_reduction(int(w), int(h), int(need))
        assert f in (1, 2, 4, 8)
        assert min(w, h) // f >= need or f == 1
        assert f == 8 or min(w, h) // (2 * f) < need  # the next scale down would be too small


@pytest.mark.parametrize("spec, factor", [(LITE2, 4), (LITE0, 4), (SMALL, 8),
                                          (PreprocessSpec(size=600, resize=901), 1)])
def test_reduced_decode_size_and_content(big, big_file, spec, factor):
    full = read_image(big_file)
    got = read_image(big_file, spec)
    h, w = full.shape[:2]
    assert got.shape == (-(-h // factor), -(-w // factor), 3)  # libjpeg rounds scaled sides up
    assert min(got.shape[:2]) >= spec.min_side
    # The same picture: DCT scaling is close to an area-average of the full decode.
    ref = cv2.resize(full, got.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(got.astype(int) - ref).mean() < 2.0
    if factor == 1:
        assert np.array_equal(got, full)


def test_kaggle_sized_photos_decode_exactly_as_before(data_dir):
    """The original photos are smaller than 2x any shipped resize: nothing changes for them."""
    for p in sorted(data_dir.glob("*.jpg")):
        if p.name == "dog.jpg":  # 1546x1213: big enough to be reduced for 256 / 293
            continue
        for spec in (LITE0, LITE2):
            assert np.array_equal(read_image(p, spec), read_image(p)), p.name


def test_exif_rotated_jpeg_through_the_reduced_path(big, tmp_path):
    plain, rotated = tmp_path / "plain.jpg", tmp_path / "rotated.jpg"
    plain.write_bytes(_jpeg(big))
    rotated.write_bytes(with_exif_orientation(plain.read_bytes(), 6))  # 6: rotate 90 clockwise
    got = read_image(rotated, LITE2)
    assert got.shape == (600, 450, 3)  # 1800x2400 after rotation, at 1/4
    assert np.array_equal(got, cv2.rotate(read_image(plain, LITE2), cv2.ROTATE_90_CLOCKWISE))


def test_progressive_jpeg_through_the_reduced_path(big, tmp_path):
    p = tmp_path / "progressive.jpg"
    p.write_bytes(_jpeg(big, IMWRITE_JPEG_PROGRESSIVE=1))
    assert b"\xff\xc2" in p.read_bytes()  # SOF2: really progressive
    got = read_image(p, LITE2)
    assert got.shape == (450, 600, 3)
    ref = cv2.resize(read_image(p), (600, 450), interpolation=cv2.INTER_AREA)
    assert np.abs(got.astype(int) - ref).mean() < 2.0


def test_png_and_16bit_decode_at_full_size(big, tmp_path):
    png, deep = tmp_path / "big.png", tmp_path / "deep.png"
    cv2.imwrite(str(png), big)
    cv2.imwrite(str(deep), big.astype(np.uint16) * 257)
    for p in (png, deep):
        got = read_image(p, LITE2)
        assert got.shape == big.shape and got.dtype == np.uint8
        assert np.array_equal(got, read_image(p))


def test_grey_and_cmyk_jpegs_reduced_to_colour(big, data_dir, tmp_path):
    grey = tmp_path / "grey.jpg"
    grey.write_bytes(_jpeg(cv2.cvtColor(big, cv2.COLOR_BGR2GRAY)))
    g = read_image(grey, LITE2)
    assert g.shape == (450, 600, 3) and (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    cmyk = data_dir / "cmyk.jpg"  # 100x100, Adobe-inverted CMYK: reduced to 50x50 for a 50 px resize
    got = read_image(cmyk, PreprocessSpec(size=48, resize=50))
    assert got.shape == (50, 50, 3)
    ref = cv2.resize(read_image(cmyk), (50, 50), interpolation=cv2.INTER_AREA)
    assert np.abs(got.astype(int) - ref).mean() < 3.0  # right colours, not the inverted samples


def test_bad_bytes_still_fail_with_the_file_name():
    from catdog.runtime.spine.errors import InputError

    head = _jpeg(np.zeros((1600, 1600, 3), np.uint8))[:600]  # a header saying 1600x1600, then nothing
    with pytest.raises(InputError, match="cut.jpg"):
        decode_image(head, "cut.jpg", LITE2)


def test_classifier_and_cli_decode_reduced_by_default_and_full_with_the_switch(models, big_file):
    clf = Classifier.from_file(models["float"], provider="cpu")
    full = Classifier.from_file(models["float"], provider="cpu", full_decode=True)
    reduced_img, full_img = read_image(big_file, clf.spec), read_image(big_file)
    assert reduced_img.shape != full_img.shape
    assert np.array_equal(clf.load(big_file)[0], resize_crop(reduced_img, clf.spec))
    assert np.array_equal(full.load(big_file)[0], resize_crop(full_img, clf.spec))
    want = {"reduced": clf.predict(reduced_img).probs, "full": clf.predict(full_img).probs}
    assert want["reduced"] != pytest.approx(want["full"], abs=1e-6)  # the switch is observable
    for flag, key in (((), "reduced"), (("--full-decode",), "full")):
        r = run_cli(big_file, "--model", models["float"], "--provider", "cpu", "--json", *flag)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["probs"] == pytest.approx(want[key], abs=1e-6), key
