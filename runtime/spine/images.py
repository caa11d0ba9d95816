"""The one image reader and decoder: a regular file's bytes (never a FIFO or a device), a header
check against decompression bombs, libjpeg's reduced decode at the model's size, clear per-file
errors. Training validation, export calibration and parity, the runtime and the benchmarks all
decode through here, so validated and deployed pixels are the same.

The image-size guard for what is classified (the runtime's CLI, its HTTP API and --ray, all
through Classifier.load with limits=CLASSIFY) is here too, one check on the header's size before
any pixel is decoded: each side at least MIN_SIDE, no side more than MAX_ASPECT times the other
(the resize to the model's shorter side would make a 8x20000 strip 293x732000), and at most
CLASSIFY_MAX_PIXELS decoded pixels (after libjpeg's reduction), with every decode in the process
sharing one budget of that many pixels, so concurrent requests cannot add up. A JPEG that libjpeg
reports as damaged ("Corrupt JPEG data", "Premature end of JPEG file") is refused there too: its
missing pixels are invented, and a label for them would be a guess."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from catdog.runtime.spine import stderr
from catdog.runtime.spine.errors import InputError, error_line
from catdog.runtime.spine.headers import header_size, progressive_cost

if TYPE_CHECKING:
    from catdog.runtime.spine.spec import PreprocessSpec


# Refuse images whose header claims more pixels than this before decoding them (decompression
# bombs). 100 MP is well above any camera photo. OpenCV gets the same cap for formats we don't parse.
MAX_PIXELS = 100_000_000


os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class SizeLimits:
    """What a decode accepts, checked on the header's size before decoding (see the module's doc)."""

    max_pixels: int = MAX_PIXELS  # decoded pixels (a JPEG's after libjpeg's reduction)
    min_side: int = 1
    max_aspect: float | None = None  # longer side / shorter side
    strict: bool = False  # refuse formats whose size the header does not give, and damaged JPEGs


MIN_SIDE = 8  # a smaller image (a 1x1 tracking pixel, a broken thumbnail) is refused, not labelled
MAX_ASPECT = 20.0
CLASSIFY_MAX_PIXELS = 16_000_000  # 48 MB decoded; a JPEG decodes reduced, so this binds PNG/BMP/TIFF/WebP
ANY_IMAGE = SizeLimits()  # training, prepare, export: only the bomb check (training decodes big photos whole)
CLASSIFY = SizeLimits(CLASSIFY_MAX_PIXELS, MIN_SIDE, MAX_ASPECT, strict=True)
ARRAY = SizeLimits(1 << 62, MIN_SIDE, MAX_ASPECT)  # an array handed to the API: decoded already (its memory is
# spent), but its sides and aspect still bound the resize


# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 scale in the DCT domain (OpenCV's IMREAD_REDUCED_COLOR_N).
# A 12 MP phone photo decodes ~2x faster at 1/8, and the 12 MP resize that followed disappears.
_REDUCED_COLOR = {2: 17, 4: 33, 8: 65}  # cv2.IMREAD_REDUCED_COLOR_2/4/8 (cv2 is imported lazily)


_IMREAD_COLOR = 1


def check_size(width: int, height: int, source: str, limits: SizeLimits = CLASSIFY, decoded: int | None = None,
               hint: str = "") -> None:
    """THE image-size guard: raise InputError naming `source` unless a width x height image fits
    `limits`. `decoded`: the pixels the decode will make (a reduced JPEG's), if not width*height."""
    short, long_ = min(width, height), max(width, height)
    if short < limits.min_side:
        raise InputError(f"{source}: {width}x{height} pixels is too small to classify (at least "
                         f"{limits.min_side} px a side); remove it")
    if limits.max_aspect and long_ > limits.max_aspect * short:
        raise InputError(f"{source}: {width}x{height} pixels is too elongated to classify (over "
                         f"{limits.max_aspect:g}:1; the centre crop would see a sliver of it); crop it first")
    pixels = width * height if decoded is None else decoded
    if pixels > limits.max_pixels:
        raise InputError(f"{source}: {width}x{height} pixels would decode to {pixels / 1e6:.1f} MP, over the "
                         f"{limits.max_pixels / 1e6:g} MP limit on a decode here; downscale the image{hint}")


class _PixelBudget:
    """Decoded pixels in flight in this process, at most `total` (one decode alone always runs): N
    threads decoding large images (the API's concurrent requests) take N times the memory otherwise."""

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self.cond:
            while self.used and self.used + pixels > self.total:
                self.cond.wait()
            self.used += pixels
        try:
            yield
        finally:
            with self.cond:
                self.used -= pixels
                self.cond.notify_all()


_BUDGET = _PixelBudget(CLASSIFY_MAX_PIXELS)
def jpeg_reduction(width: int, height: int, min_side: int) -> int:
    """The largest libjpeg scale-down (8, 4 or 2; 1 = none) that keeps the shorter side >= min_side.
    libjpeg rounds a scaled side up; rounding down here keeps the promise even at the boundary."""
    short = min(width, height)
    return next((f for f in (8, 4, 2) if short // f >= min_side), 1)


def decode_image(data: bytes, source: str = "image", spec: PreprocessSpec | None = None,
                 limits: SizeLimits = ANY_IMAGE) -> np.ndarray:
    """Encoded bytes -> BGR uint8 HxWx3. EXIF orientation is applied; gray, alpha, 16-bit and
    CMYK are converted (IMREAD_COLOR does all of that in one decode).
    With `spec`, a JPEG is decoded at the smallest libjpeg scale whose shorter side is still at
    least spec.min_side (never smaller: the resize after it only ever shrinks). Other formats, and
    spec=None (--full-decode), decode at full size. Every stage passes the model's spec here, so
    validated, calibrated and deployed pixels are the same. `limits`: the size guard (CLASSIFY for
    what is classified; see the module's doc), checked before a pixel is decoded."""
    if len(data) == 0:
        raise InputError(f"{source}: empty file (0 bytes); replace or remove it")
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(
            f"{source}: header claims {size[0]}x{size[1]} pixels (over {MAX_PIXELS // 1_000_000} MP); "
            "refusing to decode a possible decompression bomb; downscale the image"
        )
    jpeg = data[:2] == b"\xff\xd8"
    factor = 1
    if spec is not None and size is not None and jpeg:
        factor = jpeg_reduction(size[0], size[1], spec.min_side)
    if not limits.strict:
        img = _imdecode(data, _REDUCED_COLOR.get(factor, _IMREAD_COLOR), source)
        if factor > 1 and min(img.shape[:2]) < spec.min_side:  # type: ignore[union-attr]
            # Only if the header's size was not the frame's (a JPEG with two frames): keep the promise.
            img = _imdecode(data, _IMREAD_COLOR, source)
        return img
    if size is None:
        raise InputError(f"{source}: not a readable image (corrupt, truncated, or not JPEG, PNG, BMP, GIF, WebP or "
                         "TIFF, whose size is checked before decoding); convert it to JPEG or PNG")
    w, h = size
    decoded = -(-w // factor) * -(-h // factor)  # libjpeg rounds a scaled side up
    coefficients = progressive_cost(data) if jpeg else None
    if coefficients is not None:
        decoded = max(decoded, coefficients)  # the full image's coefficients, whatever the scale
    hint = "" if spec is not None or not jpeg else ", or drop --full-decode (a JPEG then decodes reduced)"
    check_size(w, h, source, limits, decoded, hint)
    with _BUDGET.hold(decoded):
        img = _imdecode(data, _REDUCED_COLOR.get(factor, _IMREAD_COLOR), source, watch=jpeg)
        if factor > 1 and min(img.shape[:2]) < spec.min_side:  # type: ignore[union-attr]
            check_size(w, h, source, limits, None, hint)  # the full decode this fallback makes
            img = _imdecode(data, _IMREAD_COLOR, source, watch=True)
    check_size(img.shape[1], img.shape[0], source, limits)  # what was decoded: a header may lie
    return img


# libjpeg's warnings that mean pixels are missing or wrong (it decodes on and invents the rest); its
# other warnings (an unknown JFIF revision, an odd thumbnail) leave the pixels right.
_JPEG_DAMAGE = (b"Corrupt JPEG data", b"Premature end of JPEG file")
_WATCH_LOCK = threading.Lock()


def _imdecode(data: bytes, flags: int, source: str, watch: bool = False) -> np.ndarray:
    """cv2.imdecode. `watch` (a JPEG being classified): refuse it if libjpeg reports it damaged.
    libjpeg says so only on the process's stderr (OpenCV ignores its warning count), so the decode
    runs with fd 2 pointed at a file, one watched decode at a time; whatever else reached fd 2
    meanwhile is passed on to it."""
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    damage: list[bytes] = []
    try:
        if watch:
            img, damage = _imdecode_watched(cv2, buf, flags)
        else:
            img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        raise InputError(f"{source}: cannot decode image ({error_line(e, last=True)})") from None
    if img is None or img.size == 0:
        raise InputError(f"{source}: not a readable image (corrupt, truncated or not an image format)")
    if damage:
        said = damage[0].decode("ascii", "replace").strip()
        raise InputError(f"{source}: damaged JPEG (libjpeg: {said}): part of the picture is invented, so a label "
                         "would be a guess; replace the file")
    return img


def _imdecode_watched(cv2: object, buf: np.ndarray, flags: int) -> tuple[np.ndarray | None, list[bytes]]:
    """One watched decode at a time (_WATCH_LOCK): a libjpeg line then belongs to this decode."""
    with _WATCH_LOCK:
        try:
            with stderr.captured(lambda ln: ln.startswith(_JPEG_DAMAGE)) as read:
                img = cv2.imdecode(buf, flags)  # type: ignore[attr-defined]
                said = read()
        except OSError:  # no fd 2 to watch (a daemon): decode unwatched
            return cv2.imdecode(buf, flags), []  # type: ignore[attr-defined]
    return img, [ln for ln in said.splitlines(keepends=True) if ln.startswith(_JPEG_DAMAGE)]


def read_image(path: str | os.PathLike, spec: PreprocessSpec | None = None,
               limits: SizeLimits = ANY_IMAGE) -> np.ndarray:
    """Read and decode an image file -> BGR uint8 HxWx3, or raise InputError naming the file.
    `spec`: the model's preprocessing, for the reduced JPEG decode; `limits`: see decode_image."""
    path = Path(path)
    try:
        data = _read_regular(path)  # bytes first: works for non-ASCII paths where cv2.imread does not
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; check the file's permissions") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    return decode_image(data, str(path), spec, limits)


def _read_regular(path: Path) -> bytes:
    """A regular file's bytes. Opened non-blocking and checked on the open file (no race): a FIFO
    would block the read forever, a device (/dev/zero behind a symlink) never ends."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            raise InputError(f"{path}: is {kind}, not an image file; remove it or pass image files only")
        return f.read()
