"""THE eval-time preprocessing. Training validation, export calibration and parity, the runtime and
the benchmarks all call these functions, so the accuracy measured at validation is the accuracy
deployed. Input: an image as OpenCV decodes it (BGR uint8 HxWx3; gray, alpha and 16-bit are
accepted too). Geometry matches torchvision's Resize(shorter side) + CenterCrop rounding."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.spec import PreprocessSpec

_CV_INTERP = {"nearest": 0, "bilinear": 1, "bicubic": 2, "area": 3}  # cv2.INTER_* values


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA, uint8/uint16/float) -> contiguous BGR uint8 HxWx3."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise InputError(f"expected a decoded image array, got {getattr(image, 'shape', type(image))}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    elif channels != 3:
        raise InputError(f"expected 1, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(image)


def resize_crop(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Geometry and channel order only: -> uint8 (size, size, 3) in spec.channel_order.
    This is also the whole host-side work for a --bake-preprocess model."""
    import cv2

    img = to_bgr8(image)
    h, w = img.shape[:2]
    interp = _CV_INTERP[spec.interpolation]
    if spec.resize_mode == "stretch":
        img = cv2.resize(img, (spec.size, spec.size), interpolation=interp)
    else:
        short, long_ = (h, w) if h <= w else (w, h)
        new_short, new_long = spec.resize, int(spec.resize * long_ / short)
        new_h, new_w = (new_short, new_long) if h <= w else (new_long, new_short)
        if (new_h, new_w) != (h, w):
            img = cv2.resize(img, (new_w, new_h), interpolation=interp)
        top = int(round((new_h - spec.size) / 2.0))
        left = int(round((new_w - spec.size) / 2.0))
        img = img[top : top + spec.size, left : left + spec.size]
    if spec.channel_order == "RGB":
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)


def normalize_affine(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    # x * scale then (x - mean) / std  ==  x * a - b, one fused pass over the pixels.
    std = np.asarray(spec.std, dtype=np.float32)
    a = np.float32(spec.scale) / std
    b = np.asarray(spec.mean, dtype=np.float32) / std
    return a, b


def normalize(crops: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 NHWC (from resize_crop) -> float32 NCHW, contiguous."""
    a, b = normalize_affine(spec)
    n, h, w, c = crops.shape
    # Transpose while still uint8 (a quarter of the bytes), then one cast-and-multiply into the
    # output and an in-place subtract: the same float32 values as astype -> * -> - -> transpose,
    # 8x faster (0.15 vs 1.2 ms per 256 px image), which is time the inference thread waited.
    x = np.empty((n, c, h, w), np.float32)
    np.multiply(crops.transpose(0, 3, 1, 2), a.reshape(1, c, 1, 1), out=x)
    x -= b.reshape(1, c, 1, 1)
    return x


def preprocess(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One decoded image -> float32 (1, 3, size, size)."""
    return normalize(resize_crop(image, spec)[None], spec)


def preprocess_batch(images: Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Decoded images -> float32 (N, 3, size, size)."""
    if len(images) == 0:
        return np.zeros((0, 3, spec.size, spec.size), dtype=np.float32)
    return normalize(np.stack([resize_crop(im, spec) for im in images]), spec)
