"""Datasets: split a labelled folder (found by the runtime's one folder reader, `folders.scan`, so
training sees exactly the images export and the benchmarks see) reproducibly, and decode it.
Training augments with torchvision; validation calls the spine's `preprocess`, so the accuracy
measured here is the accuracy the runtime will deliver.

A file that cannot be decoded never crashes an epoch: the Dataset returns a marker, the collate
function drops it and hands its message up, and the trainer reports each bad file once."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from catdog.runtime.spine.errors import ConfigError, DataError, InputError
from catdog.runtime.spine.folders import LabelledFolder
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import preprocess, to_bgr8
from catdog.runtime.spine.spec import PreprocessSpec


def split(data: LabelledFolder, val_fraction: float = 0.2, seed: int = 0) -> tuple[LabelledFolder, LabelledFolder]:
    """Stratified, seeded split of a scanned folder: the same folder and seed always give the same two lists."""
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
    return data.subset(train), data.subset(val)


def check_classes_readable(data: LabelledFolder) -> None:
    """Refuse a class none of whose images can be read: training would go on without it and export a
    model that lists a class it never saw, as an empty class folder would (folders.scan refuses that).
    Decodes each class's files in order until one reads: one decode per class on healthy data."""
    for y, name in enumerate(data.classes):
        paths = [p for p, label in data.samples if label == y]
        first = None
        for p in paths:
            try:
                read_image(p, None)
                break
            except InputError as e:
                first = first or str(e)
        else:
            if paths:
                where = os.path.commonpath(paths) if len(paths) > 1 else paths[0]
                raise DataError(f"{where}: class {name!r} has no readable image among its {len(paths)} training "
                                f"file(s) (e.g. {first}); add readable photos of it or remove the class")


def train_transform(spec: PreprocessSpec, augment: str = "seed"):
    """The augmentation on a uint8 CHW tensor in RGB (ColorJitter's saturation/hue assume RGB).
    Resize to the spec's shorter side first so rotation and cropping work on small images.
    seed: flip, rotate, crop, colour jitter; trivial / randaugment: flip and crop, then
    TrivialAugmentWide (Mueller & Hutter 2021) / RandAugment (Cubuk et al. 2020) in place of the rest."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import v2 as T

    # OpenCV's "area" (right for the spine's big downscales) has no torchvision mode: an arch whose
    # spec uses it names its training interpolation at registration instead of getting a silent one.
    modes = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
             "bicubic": InterpolationMode.BICUBIC}
    if spec.interpolation not in modes:
        raise ConfigError(f"spec interpolation {spec.interpolation!r}: torchvision's augmentation has no "
                          f"{spec.interpolation!r} resize; use nearest, bilinear or bicubic for training "
                          "(register_model(..., train_interpolation='bilinear'))")
    interp = modes[spec.interpolation]
    first = T.Resize(spec.resize, interpolation=interp, antialias=True) if spec.resize_mode == "shorter" else (
        T.Resize((spec.size, spec.size), interpolation=interp, antialias=True)
    )
    crop = T.RandomResizedCrop(spec.size, scale=(0.8, 1.0), interpolation=interp, antialias=True)
    policy = {"trivial": T.TrivialAugmentWide, "randaugment": T.RandAugment}.get(augment)
    if policy is not None:  # their geometric ops take no bicubic on tensors
        return T.Compose([first, T.RandomHorizontalFlip(), crop, policy(interpolation=InterpolationMode.BILINEAR)])
    return T.Compose([first, T.RandomHorizontalFlip(), T.RandomRotation(10, interpolation=InterpolationMode.BILINEAR),
                      crop, T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0)])


def batch_mixer(num_classes: int, *, mixup: float, cutmix: float):
    """MixUp (Zhang et al. 2018) and/or CutMix (Yun et al. 2019) on a whole batch, from
    torchvision.transforms.v2: (x, labels) -> (mixed x, (N, C) soft labels). None when both are off;
    with both on, each batch gets one of the two at random."""
    from torchvision.transforms import v2 as T

    ops = ([T.MixUp(alpha=mixup, num_classes=num_classes)] if mixup > 0 else []) + (
        [T.CutMix(alpha=cutmix, num_classes=num_classes)] if cutmix > 0 else [])
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else T.RandomChoice(ops)


class ImageDataset(Dataset):
    """Items are (float32 CHW tensor, label) or, for a file that cannot be decoded, (None, message)."""

    def __init__(self, data: LabelledFolder, spec: PreprocessSpec, *, train: bool, augment: str = "seed"):
        self.samples = list(data.samples)
        self.spec = spec
        self.train = train
        self._aug = train_transform(spec, augment) if train else None
        self._mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        path, label = self.samples[i]
        try:
            # Validation decodes as the runtime does (reduced JPEG decode for the model's spec); the
            # random crops of training augmentation may zoom in, so they get every pixel.
            img = read_image(path, None if self.train else self.spec)
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


def make_loader(ds: ImageDataset, batch_size: int, workers: int, *, shuffle: bool, seed: int, epoch: int = 0,
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
