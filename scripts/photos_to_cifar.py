"""Write labelled photos as a CIFAR-10 *binary* archive, so the `cifar10:PATH` path can be tried on
real photos without CIFAR itself (and any small class-per-folder set can be fed to it):

    .venv/bin/python scripts/photos_to_cifar.py PHOTOS OUT [--test-fraction 0.2] [--seed 0] [--tar]

PHOTOS is read by the runtime's one folder reader (flat Kaggle names cat.12.jpg or one folder per
class; at most 256 classes, the record's one label byte). Each photo is decoded by the spine's
decoder and brought to 32x32 by the spine's resize_crop with alexnet_cifar's spec (shorter side to
32 with OpenCV's area filter, centre crop): the pixels a 32-px model sees at inference. A seeded,
stratified --test-fraction becomes test_batch.bin, the rest data_batch_1..5.bin; batches.meta.txt
lists the class names (sorted, as the reader found them). OUT/cifar-10-batches-bin/ is written, and
with --tar also OUT/cifar-10-binary.tar.gz (the published layout: one top folder). Then:

    catdog-train --preset s1-alexnet-cifar10 --data cifar10:OUT/cifar-10-binary.tar.gz --out runs/s1
"""

from __future__ import annotations

import argparse
import random
import sys
import tarfile
from pathlib import Path

import numpy as np

from catdog.runtime.spine.errors import CatdogError
from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.images import read_image
from catdog.runtime.spine.preprocess import resize_crop
from catdog.runtime.spine.spec import PreprocessSpec

SPEC = PreprocessSpec(size=32, resize=32, interpolation="area", channel_order="RGB")  # alexnet_cifar's
FOLDER, ARCHIVE = "cifar-10-batches-bin", "cifar-10-binary.tar.gz"


def record(path: str, label: int) -> bytes:
    """One CIFAR-10 binary record: the label byte, then the R, G and B planes (32x32 each, row-major)."""
    rgb = resize_crop(read_image(path, SPEC), SPEC)
    return bytes([label]) + np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()


def split(samples: list[tuple[str, int]], fraction: float, seed: int) -> tuple[list, list]:
    """Stratified: each class gives round(fraction * its count) photos (at least 1) to the test batch."""
    rng = random.Random(seed)
    train, test = [], []
    for y in sorted({y for _, y in samples}):
        mine = sorted(s for s in samples if s[1] == y)
        rng.shuffle(mine)
        k = max(1, round(fraction * len(mine)))
        test += mine[:k]
        train += mine[k:]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write(photos: Path, out: Path, fraction: float = 0.2, seed: int = 0, tar: bool = False) -> Path:
    data = scan(photos)
    if len(data.classes) > 256:
        raise SystemExit(f"{photos}: {len(data.classes)} classes; a CIFAR-10 record has one label byte (<= 256)")
    if any("\n" in c for c in data.classes):
        raise SystemExit(f"{photos}: a class name holds a newline; batches.meta.txt has one name per line")
    train, test = split(list(data.samples), fraction, seed)
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(len(train)), 5), 1):
        (folder / f"data_batch_{k}.bin").write_bytes(b"".join(record(*train[i]) for i in part))
    (folder / "test_batch.bin").write_bytes(b"".join(record(*s) for s in test))
    (folder / "batches.meta.txt").write_text("\n".join(data.classes) + "\n\n", encoding="utf-8")
    print(f"{folder}: {len(train)} train + {len(test)} test records, classes {', '.join(data.classes)}")
    if not tar:
        return folder
    path = out / ARCHIVE
    with tarfile.open(path, "w:gz") as t:
        t.add(folder, arcname=FOLDER)
    print(f"{path}")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", type=Path, help="flat Kaggle names (cat.12.jpg) or one folder per class")
    ap.add_argument("out", type=Path, help="writes OUT/cifar-10-batches-bin/ (and OUT/cifar-10-binary.tar.gz)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="stratified share for test_batch.bin")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tar", action="store_true", help="also write the .tar.gz, as the site publishes it")
    a = ap.parse_args(argv)
    if not 0 < a.test_fraction < 1:
        raise SystemExit("--test-fraction must be in (0, 1)")
    try:
        write(a.photos, a.out, a.test_fraction, a.seed, a.tar)
    except CatdogError as e:  # an unreadable photo, an empty folder: one line, as the CLIs say it
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    sys.exit(main())
