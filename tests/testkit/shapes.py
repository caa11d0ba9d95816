"""Small labelled image folders a one-epoch model can learn: each class has its own hue and its own
shape (circle, square, triangle) in the complementary colour, at a random place and size over a
noisy background, written as real JPEGs by OpenCV (no mocks). Deterministic for a seed."""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

FLOWERS = ("daisy", "dandelion", "roses", "sunflowers", "tulips")  # TensorFlow's flower_photos classes
TEN = ("anchor", "bell", "cactus", "drum", "feather", "kettle", "lantern", "mitten", "quill", "violin")


def shape_image(c: int, k: int, rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """A BGR uint8 image of class c of k."""
    r, g, b = colorsys.hsv_to_rgb(c / k, 0.9, 0.95)
    colour = np.array([b, g, r]) * 255
    img = rng.integers(0, 60, (size, size, 3)).astype(np.float32) + 90
    img = img * 0.3 + 0.7 * colour * (0.7 + 0.3 * rng.random())
    cx, cy = (int(v) for v in rng.integers(12, size - 12, 2))
    rad = int(rng.integers(5, 10))
    fg = (255 - colour).tolist()
    if c % 3 == 0:
        cv2.circle(img, (cx, cy), rad, fg, -1)
    elif c % 3 == 1:
        cv2.rectangle(img, (cx - rad, cy - rad), (cx + rad, cy + rad), fg, -1)
    else:
        cv2.fillPoly(img, [np.array([[cx, cy - rad], [cx - rad, cy + rad], [cx + rad, cy + rad]])], fg)
    return np.clip(img, 0, 255).astype(np.uint8)


def shapes_folder(root: Path, names: tuple[str, ...], per_class: int, seed: int = 0) -> Path:
    """root/<name>/<name>.<i>.jpg, per_class JPEGs for each class name; -> root."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            assert cv2.imwrite(str(root / name / f"{name}.{i}.jpg"), shape_image(c, len(names), rng))
    return root
