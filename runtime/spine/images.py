"""The one image reader and decoder: a regular file's bytes (never a FIFO or a device), a header
check against decompression bombs, libjpeg's reduced decode at the model's size, clear per-file
errors. Training validation, export calibration and parity, the runtime and the benchmarks all
decode through here, so validated and deployed pixels are the same."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catdog.runtime.spine.errors import InputError, error_line

if TYPE_CHECKING:
    from catdog.runtime.spine.spec import PreprocessSpec


# Refuse images whose header claims more pixels than this before decoding them (decompression
# bombs). 100 MP is well above any camera photo. OpenCV gets the same cap for formats we don't parse.
MAX_PIXELS = 100_000_000


os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 scale in the DCT domain (OpenCV's IMREAD_REDUCED_COLOR_N).
# A 12 MP phone photo decodes ~2x faster at 1/8, and the 12 MP resize that followed disappears.
_REDUCED_COLOR = {2: 17, 4: 33, 8: 65}  # cv2.IMREAD_REDUCED_COLOR_2/4/8 (cv2 is imported lazily)


_IMREAD_COLOR = 1


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def jpeg_reduction(width: int, height: int, min_side: int) -> int:
    """The largest libjpeg scale-down (8, 4 or 2; 1 = none) that keeps the shorter side >= min_side.
    libjpeg rounds a scaled side up; rounding down here keeps the promise even at the boundary."""
    short = min(width, height)
    return next((f for f in (8, 4, 2) if short // f >= min_side), 1)


def decode_image(data: bytes, source: str = "image", spec: PreprocessSpec | None = None) -> np.ndarray:
    """Encoded bytes -> BGR uint8 HxWx3. EXIF orientation is applied; gray, alpha, 16-bit and
    CMYK are converted (IMREAD_COLOR does all of that in one decode).
    With `spec`, a JPEG is decoded at the smallest libjpeg scale whose shorter side is still at
    least spec.min_side (never smaller: the resize after it only ever shrinks). Other formats, and
    spec=None (--full-decode), decode at full size. Every stage passes the model's spec here, so
    validated, calibrated and deployed pixels are the same."""
    if len(data) == 0:
        raise InputError(f"{source}: empty file (0 bytes); replace or remove it")
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(
            f"{source}: header claims {size[0]}x{size[1]} pixels (over {MAX_PIXELS // 1_000_000} MP); "
            "refusing to decode a possible decompression bomb; downscale the image"
        )
    factor = 1
    if spec is not None and size is not None and data[:2] == b"\xff\xd8":
        factor = jpeg_reduction(size[0], size[1], spec.min_side)
    img = _imdecode(data, _REDUCED_COLOR.get(factor, _IMREAD_COLOR), source)
    if factor > 1 and min(img.shape[:2]) < spec.min_side:  # type: ignore[union-attr]
        # Only if the header's size was not the frame's (a JPEG with two frames): keep the promise.
        img = _imdecode(data, _IMREAD_COLOR, source)
    return img


def _imdecode(data: bytes, flags: int, source: str) -> np.ndarray:
    import cv2

    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as e:
        raise InputError(f"{source}: cannot decode image ({error_line(e, last=True)})") from None
    if img is None or img.size == 0:
        raise InputError(f"{source}: not a readable image (corrupt, truncated or not an image format)")
    return img


def read_image(path: str | os.PathLike, spec: PreprocessSpec | None = None) -> np.ndarray:
    """Read and decode an image file -> BGR uint8 HxWx3, or raise InputError naming the file.
    `spec`: the model's preprocessing, for the reduced JPEG decode (see decode_image)."""
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
    return decode_image(data, str(path), spec)


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
