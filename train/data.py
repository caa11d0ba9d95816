"""Datasets: find the images and their labels (Kaggle flat `cat.12.jpg` or one folder per class),
split them reproducibly, and decode them. Training augments with torchvision; validation calls the
spine's `preprocess`, so the accuracy measured here is the accuracy the runtime will deliver.

A file that cannot be decoded never crashes an epoch: the Dataset returns a marker, the collate
function drops it and hands its message up, and the trainer reports each bad file once."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from catdog.runtime.errors import DataError, InputError
from catdog.runtime.files import IMAGE_SUFFIXES, flat_label, read_image
from catdog.runtime.preprocess import preprocess, to_bgr8
from catdog.runtime.spec import PreprocessSpec


@dataclass(frozen=True)
class ImageSet:
    """Images of one folder: sorted class names and (path, label index) pairs, in sorted order."""

    root: Path
    layout: str  # "flat" | "folders"
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for _, y in self.samples:
            out[self.classes[y]] += 1
        return out


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _images_under(folder: Path) -> list[Path]:
    # followlinks=False: a symlink loop cannot trap the walk (linked files are still listed).
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _is_image(f))
    return found


def scan(root: str | os.PathLike, classes: Sequence[str] | None = None) -> ImageSet:
    """Find the images under `root`. `classes` (e.g. the training set's) fixes the label order;
    a class missing from it is an error, so train and validation labels can never disagree."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass a folder of images (cat.1.jpg ...) or of class folders")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_class = {d.name: _images_under(d) for d in subdirs}
    by_class = {k: v for k, v in by_class.items() if v}
    loose = sorted(p for p in root.iterdir() if p.is_file() and _is_image(p.name))
    if by_class and loose:
        raise DataError(
            f"{root}: mixes class folders ({', '.join(list(by_class)[:3])}) with loose images "
            f"({loose[0].name} ...); use one layout"
        )
    if by_class:
        layout = "folders"
    elif loose:
        layout = "flat"
        by_class = {}
        unnamed = [p.name for p in loose if flat_label(p.name) is None]
        if unnamed:
            raise DataError(
                f"{root}: unknown layout: {len(unnamed)} image(s) like {unnamed[0]!r} are neither named "
                "<class>.<id>.<ext> (cat.12.jpg) nor inside class folders"
            )
        for p in loose:
            by_class.setdefault(flat_label(p.name), []).append(p)
    else:
        raise DataError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)}); check the path")
    names = tuple(sorted(by_class)) if classes is None else tuple(classes)
    extra = sorted(set(by_class) - set(names))
    if extra:
        raise DataError(
            f"{root}: has {len(by_class)} classes {sorted(by_class)}, but the model has {len(names)}: {list(names)}; "
            "class names must match the training data"
        )
    if classes is None and len(names) < 2:
        raise DataError(f"{root}: only one class ({names[0]!r}); a classifier needs at least two")
    index = {c: i for i, c in enumerate(names)}
    samples = tuple((str(p), index[c]) for c in sorted(by_class) for p in by_class[c])
    return ImageSet(root, layout, names, samples)


def split(data: ImageSet, val_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Stratified, seeded split: the same folder and seed always give the same two lists."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val fraction must be between 0 and 1, got {val_fraction}")
    rng = random.Random(seed)
    train, val = [], []
    for y in range(len(data.classes)):
        items = sorted(s for s in data.samples if s[1] == y)
        rng.shuffle(items)
        n_val = int(round(len(items) * val_fraction))
        if len(items) >= 2:
            n_val = min(max(n_val, 1), len(items) - 1)
        val += items[:n_val]
        train += items[n_val:]
    if not val:
        raise DataError(f"{data.root}: too few images to hold out {val_fraction:.0%} for validation; pass --val DIR")
    return (
        ImageSet(data.root, data.layout, data.classes, tuple(sorted(train))),
        ImageSet(data.root, data.layout, data.classes, tuple(sorted(val))),
    )


def train_transform(spec: PreprocessSpec):
    """The seed augmentation on a uint8 CHW tensor in RGB (ColorJitter's saturation/hue assume RGB).
    Resize to the spec's shorter side first so rotation and cropping work on small images."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as T

    interp = {"nearest": InterpolationMode.NEAREST, "bicubic": InterpolationMode.BICUBIC}.get(
        spec.interpolation, InterpolationMode.BILINEAR
    )
    first = T.Resize(spec.resize, interpolation=interp, antialias=True) if spec.resize_mode == "shorter" else (
        T.Resize((spec.size, spec.size), interpolation=interp, antialias=True)
    )
    return T.Compose(
        [
            first,
            T.RandomHorizontalFlip(),
            T.RandomRotation(10, interpolation=InterpolationMode.BILINEAR),
            T.RandomResizedCrop(spec.size, scale=(0.8, 1.0), interpolation=interp, antialias=True),
            T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0),
        ]
    )


class ImageDataset(Dataset):
    """Items are (float32 CHW tensor, label) or, for a file that cannot be decoded, (None, message)."""

    def __init__(self, data: ImageSet, spec: PreprocessSpec, train: bool):
        self.samples = list(data.samples)
        self.spec = spec
        self.train = train
        self._aug = train_transform(spec) if train else None
        self._mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        path, label = self.samples[i]
        try:
            img = read_image(path)
        except InputError as e:
            return None, str(e)
        if not self.train:
            return torch.from_numpy(preprocess(img, self.spec)[0]), label
        rgb = np.ascontiguousarray(to_bgr8(img)[:, :, ::-1])
        x = self._aug(torch.from_numpy(rgb).permute(2, 0, 1))
        if self.spec.channel_order == "BGR":
            x = x.flip(0)
        x = x.float() * self.spec.scale
        return (x - self._mean) / self._std, label


def collate(items: list[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack the good items; return the messages of the bad ones (the batch may end up empty)."""
    good = [(x, y) for x, y in items if x is not None]
    bad = [msg for x, msg in items if x is None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.long), bad


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1)))


def make_loader(ds: ImageDataset, batch_size: int, workers: int, shuffle: bool, seed: int, epoch: int = 0,
                sampler=None, pin_memory: bool = False):
    from torch.utils.data import DataLoader

    n = len(sampler) if sampler is not None else len(ds)
    # A last training batch of one image breaks BatchNorm (one value per channel): drop just that one.
    drop_last = shuffle and n > batch_size and n % batch_size == 1
    g = torch.Generator()
    g.manual_seed(seed * 1000 + epoch)  # a fresh, reproducible order every epoch (and after --resume)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        drop_last=drop_last,
        generator=g,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_seed_worker,
    )


def _seed_worker(worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one decode per worker process; OpenCV's own pool would oversubscribe the cores
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
