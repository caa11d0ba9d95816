"""An image's size from its header, without decoding a pixel: PNG, JPEG, BMP, GIF, WebP and TIFF
(the suffixes the runtime takes). The image-size guard (images.check_size) reads it before every
decode of something to classify."""

from __future__ import annotations

import struct

PROGRESSIVE = (0xC2, 0xC6, 0xCA, 0xCE)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP, GIF, WebP or TIFF header without decoding; None for
    other formats (or a header too short to say)."""
    try:
        return _header_size(data)
    except (struct.error, IndexError):
        return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", data[18:22])
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)  # a negative height is a top-down bitmap
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if kind == b"VP8L":
            bits = struct.unpack("<I", data[21:25])[0]
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        return None
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(data)
    frame = jpeg_frame(data)
    return frame[:2] if frame else None


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """A JPEG's (width, height, SOF marker) from its first frame header; None if not a JPEG or none
    is found. Markers 0xC2, 0xC6, 0xCA, 0xCE are progressive: libjpeg then holds every DCT
    coefficient of the full-size image, even for a reduced decode (progressive_cost)."""
    i = _sof(data)
    if i is None:
        return None
    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
    return w, h, data[i + 1]


def _sof(data: bytes) -> int | None:
    """The offset of a JPEG's first frame header (its 0xFF byte); None if not a JPEG or none is found."""
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
            return i
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def progressive_cost(data: bytes) -> int | None:
    """What a progressive JPEG's full-size DCT coefficients weigh, in decoded BGR pixels (3 bytes
    each), which libjpeg holds whatever the scale it decodes at; None for a baseline JPEG or no
    JPEG. Each component holds one 2-byte coefficient per sample at its own sampling (the frame
    header's factors): 4:2:0 colour weighs one pixel per pixel, 4:4:4 two, gray two thirds."""
    frame = _sof(data)
    if frame is None or data[frame + 1] not in PROGRESSIVE:
        return None
    h, w = struct.unpack(">HH", data[frame + 5 : frame + 9])
    n = data[frame + 9]
    factors = [(data[c + 1] >> 4, data[c + 1] & 0x0F) for c in range(frame + 10, frame + 10 + 3 * n, 3)
               if c + 1 < len(data)]
    if len(factors) != n or not n or min(min(f) for f in factors) < 1:
        return 2 * w * h * max(n, 1)  # a header libjpeg will refuse anyway: count it dear
    hmax, vmax = max(f[0] for f in factors), max(f[1] for f in factors)
    samples = sum(-(-w * hs // hmax) * -(-h * vs // vmax) for hs, vs in factors)
    return -(-2 * samples // 3)


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """The first page's ImageWidth (256) and ImageLength (257): what OpenCV decodes."""
    e = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(e + "I", data[4:8])[0]
    count = struct.unpack(e + "H", data[ifd : ifd + 2])[0]
    found: dict[int, int] = {}
    for k in range(count):
        tag, typ, _, value = struct.unpack(e + "HHI4s", data[ifd + 2 + 12 * k : ifd + 14 + 12 * k])
        if tag in (256, 257):
            found[tag] = struct.unpack(e + "H", value[:2])[0] if typ == 3 else struct.unpack(e + "I", value)[0]
    return (found[256], found[257]) if len(found) == 2 else None
