"""Small CIFAR files in the published formats, made from real pixels (seeded crops of the test
photos, shrunk to 32x32 with OpenCV's area filter): the python version pickled as Python 2's cPickle
wrote it (str as BINSTRING, so keys and names load as bytes; numpy's _reconstruct under
numpy.core for CIFAR-10, as numpy 1 named it, under numpy._core for CIFAR-100), the binary version
as its records, and both as the .tar.gz archives the site publishes."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PHOTOS = sorted((Path(__file__).parents[1] / "data").glob("*.*.jpg"))
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FINE_NAMES = ("aquarium_fish", "maple_tree", "oak_tree", "baby", "flatfish", "girl")  # not CIFAR's own 100
COARSE_NAMES = ("fish", "trees", "people")
FINE_TO_COARSE = (0, 1, 1, 2, 0, 2)


@dataclass(frozen=True)
class Made:
    """What was written: RGB images (N, 32, 32, 3) and labels of each split."""

    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray  # CIFAR-10 labels, or CIFAR-100 fine labels
    test_labels: np.ndarray

    def coarse(self, split: str) -> np.ndarray:
        return np.asarray(FINE_TO_COARSE)[getattr(self, f"{split}_labels")]


def crops(n: int, seed: int = 0) -> np.ndarray:
    """n real 32x32 RGB images: random square crops of the 12 photos."""
    rng = np.random.default_rng(seed)
    photos = [cv2.imread(str(p)) for p in PHOTOS]
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        small = cv2.resize(img[y:y + side, x:x + side], (32, 32), interpolation=cv2.INTER_AREA)
        out[i] = small[:, :, ::-1]
    return out


def make(n_train: int, n_test: int, classes: int, seed: int = 0) -> Made:
    rng = np.random.default_rng(seed)
    labels = [rng.permutation(np.arange(n) % classes) for n in (n_train, n_test)]  # every class in both splits
    return Made(crops(n_train, seed), crops(n_test, seed + 1), *labels)


def rows(images: np.ndarray) -> np.ndarray:
    """RGB HWC images -> CIFAR rows: the R plane, then G, then B."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


class Py2Pickler(pickle._Pickler):
    """Python 2's str: every bytes and str is a BINSTRING, which loads as bytes with encoding='bytes'."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        op = pickle.SHORT_BINSTRING + bytes([len(raw)]) if len(raw) < 256 else pickle.BINSTRING + struct.pack(
            "<i", len(raw))
        self.write(op + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj, numpy_module: str = "numpy.core.multiarray") -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # GLOBAL is a text opcode ("module\nname\n"): renaming the module is a plain byte replacement
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", f"c{numpy_module}\n".encode())


def _batch(images: np.ndarray, labels: dict[bytes, list[int]], title: str) -> dict:
    return {b"batch_label": title.encode(), **labels, b"data": rows(images),
            b"filenames": [f"img_{i:06d}.png".encode() for i in range(len(images))]}


def write_cifar10(root: Path, made: Made, version: str) -> Path:
    """root/cifar-10-batches-py/ (5 train batches, test_batch, batches.meta) or -bin/; -> the folder."""
    parts = np.array_split(np.arange(len(made.train)), 5)
    if version == "python":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for k, idx in enumerate(parts, 1):
            batch = _batch(made.train[idx], {b"labels": made.train_labels[idx].tolist()}, f"training batch {k} of 5")
            (folder / f"data_batch_{k}").write_bytes(py2_pickle(batch))
        test = _batch(made.test, {b"labels": made.test_labels.tolist()}, "testing batch 1 of 1")
        (folder / "test_batch").write_bytes(py2_pickle(test))
        meta = {b"num_cases_per_batch": len(parts[0]), b"label_names": [n.encode() for n in CIFAR10_NAMES],
                b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(py2_pickle(meta))
        return folder
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)

    def records(images, labels):
        return np.concatenate([np.asarray(labels, np.uint8)[:, None], rows(images)], axis=1).tobytes()

    for k, idx in enumerate(parts, 1):
        (folder / f"data_batch_{k}.bin").write_bytes(records(made.train[idx], made.train_labels[idx]))
    (folder / "test_batch.bin").write_bytes(records(made.test, made.test_labels))
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")  # the real file ends so
    return folder


def write_cifar100(root: Path, made: Made, version: str) -> Path:
    """root/cifar-100-python/ (train, test, meta) or root/cifar-100-binary/; -> the folder."""
    splits = {"train": (made.train, made.train_labels, made.coarse("train")),
              "test": (made.test, made.test_labels, made.coarse("test"))}
    if version == "python":
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for name, (images, fine, coarse) in splits.items():
            batch = _batch(images, {b"fine_labels": fine.tolist(), b"coarse_labels": coarse.tolist()}, name)
            (folder / name).write_bytes(py2_pickle(batch, "numpy._core.multiarray"))
        meta = {b"fine_label_names": [n.encode() for n in FINE_NAMES],
                b"coarse_label_names": [n.encode() for n in COARSE_NAMES]}
        (folder / "meta").write_bytes(py2_pickle(meta))
        return folder
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True)
    for name, (images, fine, coarse) in splits.items():
        labels = np.stack([coarse, fine], axis=1).astype(np.uint8)
        (folder / f"{name}.bin").write_bytes(np.concatenate([labels, rows(images)], axis=1).tobytes())
    (folder / "fine_label_names.txt").write_text("\n".join(FINE_NAMES) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(COARSE_NAMES) + "\n")
    return folder


ARCHIVES = {"cifar-10-batches-py": "cifar-10-python.tar.gz", "cifar-10-batches-bin": "cifar-10-binary.tar.gz",
            "cifar-100-python": "cifar-100-python.tar.gz", "cifar-100-binary": "cifar-100-binary.tar.gz"}


def archive(folder: Path, dst_dir: Path) -> Path:
    """The folder as the site's .tar.gz (its one top folder, as published)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    path = dst_dir / ARCHIVES[folder.name]
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return path
