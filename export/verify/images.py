"""Calibration and parity images: real photos from a folder, listed by the runtime's one folder
reader (catdog.runtime.spine.folders: same hidden-file, recursion and layout rules as training and the
benchmarks) and decoded with the spine's read_image. Only the sampling is export's own."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from catdog.runtime.spine.errors import DataError, InputError
from catdog.runtime.spine.fileio import file_sha256
from catdog.runtime.spine.folders import LabelledFolder, has_class_folders, list_images, read_images, scan
from catdog.runtime.spine.images import IMAGE_SUFFIXES
from catdog.runtime.spine.spec import PreprocessSpec

SAMPLE_SEED = 0  # fixed: the same folder gives the same calibration/parity sample on every run


@dataclass(frozen=True)
class ImageSet:
    paths: tuple[Path, ...]
    images: tuple[np.ndarray, ...]  # BGR uint8, as read_image returns them
    labels: tuple[int, ...] | None  # class indices in the model's class order, when known
    skipped: tuple[str, ...]  # one line per unreadable file
    layout: str | None = None  # where the labels came from: "flat" (Kaggle names) | "folders"


def _shuffled(paths: list[Path]) -> list[Path]:
    """Sorted first: calibration and parity list the same folder in the same order, whoever lists it."""
    order = sorted(paths)
    random.Random(SAMPLE_SEED).shuffle(order)
    return order


def sample(paths: list[Path], count: int, skip: int = 0) -> list[Path]:
    """A fixed pseudo-random sample (sorted Kaggle folders are all cats first), after the first
    `skip` of the same shuffle, so a parity sample can avoid the calibration images."""
    order = _shuffled(paths)
    rest = order[skip:] if len(order) - skip >= count else order
    return rest[:count]


def _labelled(folder: Path, classes: tuple[str, ...], *, from_names: bool) -> LabelledFolder | None:
    """The labelled images when labels can be known (class folders, or Kaggle names with
    --labels-from-names), else None: parity then measures agreement only."""
    if not (from_names or has_class_folders(folder)):
        return None
    return scan(folder, classes=classes)


def load_images(
    folder: Path, count: int, classes: tuple[str, ...] | None = None, *, from_names: bool = False, skip: int = 0,
    spec: PreprocessSpec | None = None,
) -> ImageSet:
    """Read a sample of `count` images; unreadable files are skipped and reported, not fatal.
    With `classes` (parity) labels come from class folders or, with `from_names`, from Kaggle
    names; without (calibration) the folder is just a pile of photos, read recursively. `spec`: the
    model's, for the spine's reduced JPEG decode (None: full decode)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of images")
    found = None if classes is None else _labelled(folder, classes, from_names=from_names)
    labels = None if found is None else {Path(p): y for p, y in found.samples}
    listed = list(labels) if labels is not None else list_images(folder, recursive=True)
    if not listed:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    paths = sample(listed, count, skip)
    kept, images, skipped = read_images(paths, spec)
    if not images:
        raise DataError(f"{folder}: none of {len(paths)} sampled images could be read (first: {skipped[0]})")
    kept_paths = tuple(paths[i] for i in kept)
    return ImageSet(
        paths=kept_paths,
        images=tuple(images),
        labels=None if labels is None else tuple(labels[p] for p in kept_paths),
        skipped=tuple(skipped),
        layout=None if found is None else found.layout,
    )


def held_out(folder: Path, count: int, exclude: Iterable[Path], spec: PreprocessSpec | None = None) -> ImageSet:
    """Up to `count` images of `folder` (same shuffle as `sample`) that are none of `exclude` (the
    calibration and parity images): not the same path, nor the same bytes, so a parity photo
    copied into the calibration folder is still never used to choose. May be empty."""
    exclude = list(exclude)
    paths = {Path(p).resolve() for p in exclude}
    digests = {file_sha256(p) for p in exclude}
    picked: list[Path] = []
    for p in _shuffled(list_images(folder, recursive=True)):
        if len(picked) >= count:
            break
        if p.resolve() not in paths and file_sha256(p) not in digests:
            picked.append(p)
    kept, images, skipped = read_images(picked, spec)
    return ImageSet(paths=tuple(picked[i] for i in kept), images=tuple(images), labels=None, skipped=tuple(skipped))
