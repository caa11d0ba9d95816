"""Calibration and parity images: real photos from a folder, decoded with the spine's read_image.
Labels, when asked for, come from Kaggle flat names (cat.1.jpg -> "cat") or from class folders."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.runtime.errors import DataError, InputError
from catdog.runtime.files import IMAGE_SUFFIXES, flat_label, read_image

SAMPLE_SEED = 0  # fixed: the same folder gives the same calibration/parity sample on every run


@dataclass(frozen=True)
class ImageSet:
    paths: tuple[Path, ...]
    images: tuple[np.ndarray, ...]  # BGR uint8, as read_image returns them
    labels: tuple[int, ...] | None  # class indices, when known
    skipped: tuple[str, ...]  # one line per unreadable file


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, or one level down (class-per-folder), sorted."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of images")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files += [p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return sorted(files)


def sample(paths: list[Path], count: int, skip: int = 0) -> list[Path]:
    """A fixed pseudo-random sample (sorted Kaggle folders are all cats first), after the first
    `skip` of the same shuffle, so a parity sample can avoid the calibration images."""
    order = list(paths)
    random.Random(SAMPLE_SEED).shuffle(order)
    rest = order[skip:] if len(order) - skip >= count else order
    return rest[:count]


def label_of(path: Path, root: Path, classes: tuple[str, ...], from_names: bool) -> int:
    """Class index of one image; DataError naming the file if it has no known class."""
    name = flat_label(path.name) if from_names else path.parent.name
    if from_names is False and path.parent == root:
        raise DataError(f"{path}: not inside a class folder; use --labels-from-names for flat cat.1.jpg names")
    if name not in classes:
        how = "file name prefix" if from_names else "folder"
        if name is None:
            raise DataError(f"{path}: cannot tell its label from the name; name files like cat.12.jpg")
        raise DataError(f"{path}: {how} {name!r} is not one of the model's classes {list(classes)}")
    return classes.index(name)


def has_class_folders(folder: Path) -> bool:
    return any(p.is_dir() for p in folder.iterdir())


def load_images(
    folder: Path, count: int, classes: tuple[str, ...] | None = None, from_names: bool = False, skip: int = 0
) -> ImageSet:
    """Read a sample of `count` images; unreadable files are skipped and reported, not fatal.
    Labels: from names if `from_names`, from class folders if the folder has them, else None."""
    paths = sample(list_images(folder), count, skip)
    want_labels = classes is not None and (from_names or has_class_folders(folder))
    kept, images, labels, skipped = [], [], [], []
    for p in paths:
        try:
            img = read_image(p)
        except InputError as e:
            skipped.append(str(e))
            continue
        if want_labels:
            labels.append(label_of(p, folder, classes, from_names))
        kept.append(p)
        images.append(img)
    if not images:
        raise DataError(f"{folder}: none of {len(paths)} sampled images could be read (first: {skipped[0]})")
    return ImageSet(tuple(kept), tuple(images), tuple(labels) if want_labels else None, tuple(skipped))
