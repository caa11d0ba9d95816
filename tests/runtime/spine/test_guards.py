"""The spine's shared guards (issue 32): the one redaction of credentials in a source's text, the one
image-size guard (what the CLI, the API and --ray classify), damaged JPEGs as libjpeg reports them,
and JSON nested too deep. Real bytes: PNGs and JPEGs encoded by OpenCV from tests/data photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from catdog.runtime.live.sources import open_source
from catdog.runtime.spine.errors import InputError, MetadataError
from catdog.runtime.spine.headers import progressive_cost
from catdog.runtime.spine.images import ANY_IMAGE, CLASSIFY, CLASSIFY_MAX_PIXELS, decode_image, header_size
from catdog.runtime.spine.jsonsafe import MAX_DEPTH
from catdog.runtime.spine.labels import load_labels
from catdog.runtime.spine.metadata import ModelMetadata
from catdog.runtime.spine.redact import redact_url
from catdog.runtime.spine.spec import PreprocessSpec

LITE2 = PreprocessSpec(size=260, resize=293, interpolation="bicubic")


@pytest.mark.parametrize("text, shown", [
    ("http://admin:hunter2@cam.local/stream.mjpg", "http://***@cam.local/stream.mjpg"),
    ("rtsp://admin:p@ss@10.0.0.2:554/live", "rtsp://***@10.0.0.2:554/live"),  # an unescaped '@', as FFmpeg reads it
    ("https://TOKEN123@host/x", "https://***@host/x"),
    ("http://cam/s.mjpg?user=admin&password=hunter2&fps=5", "http://cam/s.mjpg?user=admin&password=***&fps=5"),
    ("rtsp://cam/live?token=abc;api_key=def", "rtsp://cam/live?token=***;api_key=***"),
    ("gst:rtspsrc location=rtsp://a:b@cam/x user-id=admin user-pw=hunter2 ! appsink",
     "gst:rtspsrc location=rtsp://***@cam/x user-id=admin user-pw=*** ! appsink"),
    ("stream http://admin:hunter2@127.0.0.1:9/x: cannot connect", "stream http://***@127.0.0.1:9/x: cannot connect"),
])
def test_redact_url_hides_userinfo_and_secret_parameters(text, shown):
    assert redact_url(text) == shown


@pytest.mark.parametrize("text", ["/data/cat.1.jpg", "0", "/dev/video0", "http://host/img@2x/stream.mjpg",
                                  "photos/a=b.jpg", "rtsp://10.0.0.2:554/live?channel=1",
                                  "gst:videotestsrc ! x264enc key-int-max=30 bitrate=500 ! appsink"])
def test_redact_url_leaves_text_without_credentials_alone(text):
    assert redact_url(text) == text


def test_a_source_keeps_the_real_url_for_opencv_and_shows_the_redacted_one():
    src = open_source("http://admin:hunter2@127.0.0.1:9/stream.mjpg")
    assert src.target == "http://admin:hunter2@127.0.0.1:9/stream.mjpg"  # what cv2.VideoCapture opens
    assert src.shown == "http://***@127.0.0.1:9/stream.mjpg"


def _png(w: int, h: int) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize("w, h, why", [
    (1, 1, "1x1 pixels is too small to classify"),
    (8, 20000, "8x20000 pixels is too elongated"),  # 557 bytes that resized to 293x732000 (640 MB)
    (1, 2000, "1x2000 pixels is too small"),
    (5000, 4000, "would decode to 20.0 MP, over the 16 MP limit"),
])
def test_the_size_guard_refuses_before_decoding(w, h, why):
    data = _png(w, h)
    assert len(data) < 200_000 and header_size(data) == (w, h)
    with pytest.raises(InputError, match=why):
        decode_image(data, "x.png", LITE2, CLASSIFY)


def test_plain_decodes_keep_taking_big_images():
    """Training, prepare and export decode with ANY_IMAGE: only the 100 MP bomb check."""
    assert decode_image(_png(5000, 4000), "x.png", None, ANY_IMAGE).shape == (4000, 5000, 3)


def test_a_big_jpeg_counts_its_reduced_pixels_and_full_decode_says_how_to_fit(dog_jpg):
    img = cv2.resize(cv2.imread(str(dog_jpg)), (6000, 4000), interpolation=cv2.INTER_NEAREST)  # 24 MP
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()
    assert decode_image(data, "big.jpg", LITE2, CLASSIFY).shape == (500, 750, 3)  # 1/8: 0.4 MP decoded
    with pytest.raises(InputError, match="over the 16 MP limit.*drop --full-decode"):
        decode_image(data, "big.jpg", None, CLASSIFY)
    prog = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 50, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    with pytest.raises(InputError, match="over the 16 MP limit"):  # libjpeg holds all 24 MP's coefficients
        decode_image(prog, "prog.jpg", LITE2, CLASSIFY)
    assert CLASSIFY_MAX_PIXELS == 16_000_000


def test_a_progressive_jpeg_counts_its_coefficients_by_its_chroma_sampling(dog_jpg):
    """libjpeg holds a progressive JPEG's full-size coefficients (2 bytes a sample) whatever the scale:
    a phone's 12 MP 4:2:0 photo weighs 12 MP of pixels and is classified; at 4:4:4 it weighs twice
    that and is refused (counting every progressive JPEG as 4:4:4 refused the common 12 MP photo)."""
    img = cv2.resize(cv2.imread(str(dog_jpg)), (4032, 3024), interpolation=cv2.INTER_NEAREST)
    prog = [cv2.IMWRITE_JPEG_QUALITY, 50, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    p420 = cv2.imencode(".jpg", img, [*prog, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    p444 = cv2.imencode(".jpg", img, [*prog, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    gray = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), prog)
    p420, p444, gray = (x[1].tobytes() for x in (p420, p444, gray))
    assert progressive_cost(p420) == 4032 * 3024 and progressive_cost(p444) == 2 * 4032 * 3024
    assert progressive_cost(gray) == -(-2 * 4032 * 3024 // 3)
    assert progressive_cost(cv2.imencode(".jpg", img)[1].tobytes()) is None  # baseline: decoded reduced
    assert decode_image(p420, "phone.jpg", LITE2, CLASSIFY).shape == (378, 504, 3)  # 1/8
    with pytest.raises(InputError, match="over the 16 MP limit"):
        decode_image(p444, "p444.jpg", LITE2, CLASSIFY)


@pytest.mark.parametrize("fmt", [".bmp", ".webp", ".tiff", ".png", ".jpg"])
def test_every_runtime_format_has_its_size_read_from_the_header(fmt, dog_jpg):
    img = cv2.imread(str(dog_jpg))[:300, :200]
    data = cv2.imencode(fmt, img)[1].tobytes()
    assert header_size(data) == (200, 300)
    assert decode_image(data, "x" + fmt, LITE2, CLASSIFY).shape == (300, 200, 3)


def test_a_format_whose_size_is_not_in_a_known_header_is_refused_when_classified(dog_jpg):
    data = cv2.imencode(".ppm", cv2.imread(str(dog_jpg)))[1].tobytes()
    with pytest.raises(InputError, match="not a readable image.*convert it to JPEG or PNG"):
        decode_image(data, "x.ppm", LITE2, CLASSIFY)


def damaged_jpegs(photo: bytes) -> dict[str, bytes]:
    """Real damage made from a real photo: the entropy data cut short (EOI early), 300 bytes of it
    lost, a stray restart marker; libjpeg decodes each with 'Corrupt JPEG data' on stderr."""
    mid = len(photo) // 2
    return {"cut.jpg": photo[:mid] + b"\xff\xd9", "gap.jpg": photo[:mid] + photo[mid + 300:],
            "stray-rst.jpg": photo[:mid] + b"\xff\xd3" + photo[mid:]}


@pytest.mark.parametrize("name", ["cut.jpg", "gap.jpg", "stray-rst.jpg"])
def test_a_jpeg_libjpeg_reports_damaged_is_refused_when_classified(name, photos, capfd):
    data = damaged_jpegs(photos[0].read_bytes())[name]
    with pytest.raises(InputError, match=r"damaged JPEG \(libjpeg: Corrupt JPEG data"):
        decode_image(data, name, LITE2, CLASSIFY)
    assert "Corrupt JPEG data" not in capfd.readouterr().err  # said once, in the error, not by libjpeg too
    assert decode_image(photos[0].read_bytes(), "ok.jpg", LITE2, CLASSIFY).shape[2] == 3  # the watch is reset


def test_json_nested_too_deep_is_one_clear_error(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text("[" * 100_000)
    with pytest.raises(InputError, match=f"labels.json: JSON nested too deeply \\(over {MAX_DEPTH} levels\\)"):
        load_labels(labels)
    labels.write_text(json.dumps(["cat", "dog", json.loads("[" * 40 + "1" + "]" * 40)]))
    assert load_labels(labels)[:2] == ("cat", "dog")  # deep but under the bound: parsed as before
    with pytest.raises(MetadataError, match="m.onnx: catdog metadata is malformed \\(JSON nested too deeply"):
        ModelMetadata.from_json('{"schema_version": 2, "extra": ' + "[" * 50_000 + "]" * 50_000 + "}", "m.onnx")


def test_the_python_api_applies_the_guard_to_arrays_but_not_the_decode_cap(models):
    """An array is decoded already: its sides and aspect are checked (they bound the resize), not the
    16 MP decode limit."""
    from catdog.runtime.engine.classifier import Classifier

    clf = Classifier.from_file(models["float"], provider="cpu")
    assert clf.predict(np.full((4000, 5000, 3), 90, np.uint8)).label in ("cat", "dog")  # 20 MP, fine
    for shape, why in (((1, 1, 3), "1x1 pixels is too small"), ((8, 2000, 3), "2000x8 pixels is too elongated")):
        with pytest.raises(InputError, match=why):
            clf.predict(np.zeros(shape, np.uint8))
