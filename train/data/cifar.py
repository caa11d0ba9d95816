"""CIFAR-10 and CIFAR-100 (fine or coarse labels) read from the published archives
(https://www.cs.toronto.edu/~kriz/cifar.html), or their extracted folders, python or binary
version; nothing is ever downloaded. `catdog-train prepare cifar10:PATH OUT` writes them as PNG class
folders (OUT/train/<class>/, OUT/test/<class>/), so training, export, the runtime and the benchmarks
read CIFAR as any other class-per-folder dataset, through no code path of its own.

The python version is a pickle, and unpickling can run code: it is read by an unpickler that knows
only the three numpy names those files use (arrays are rebuilt from them) and refuses every other
name before anything is called. The class names always come from the archive's own meta file."""

from __future__ import annotations

import io
import os
import pickle
import re
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from catdog.runtime.spine.errors import ConfigError, DataError
from catdog.runtime.spine.fileio import atomic_write
from catdog.train.plumbing.progress import bar

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
KINDS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cifar100-coarse": "CIFAR-100"}
PIXELS = 32 * 32 * 3  # one record: R plane, G plane, B plane, each 32x32 row-major


@dataclass(frozen=True)
class Layout:
    """One published version: its archive, the folder the archive extracts to, and its files."""

    version: str  # "python" | "binary"
    archive: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str


_C10 = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUTS = {
    "cifar10": (Layout("python", "cifar-10-python.tar.gz", "cifar-10-batches-py", _C10, ("test_batch",),
                       "batches.meta"),
                Layout("binary", "cifar-10-binary.tar.gz", "cifar-10-batches-bin", tuple(f + ".bin" for f in _C10),
                       ("test_batch.bin",), "batches.meta.txt")),
    "cifar100": (Layout("python", "cifar-100-python.tar.gz", "cifar-100-python", ("train",), ("test",), "meta"),
                 Layout("binary", "cifar-100-binary.tar.gz", "cifar-100-binary", ("train.bin",), ("test.bin",),
                        "fine_label_names.txt")),
}
LAYOUTS["cifar100-coarse"] = (LAYOUTS["cifar100"][0],
                              replace(LAYOUTS["cifar100"][1], meta="coarse_label_names.txt"))


@dataclass(frozen=True)
class CifarSplit:
    images: np.ndarray  # (N, 32, 32, 3) uint8, RGB
    labels: np.ndarray  # (N,) int64, indices into CifarSet.classes


@dataclass(frozen=True)
class CifarSet:
    kind: str  # a KINDS key
    classes: tuple[str, ...]  # in the archive's label order
    train: CifarSplit
    test: CifarSplit


def parse_source(src: str | os.PathLike) -> tuple[str, Path] | None:
    """`cifar10:PATH` -> ("cifar10", PATH); None for an ordinary folder. An existing path is always
    that path (a folder may be named `cifar10:x`); an unknown `cifar...:` prefix is refused."""
    text = str(src)
    m = re.fullmatch(r"(cifar[\w-]*):(.+)", text, flags=re.DOTALL)
    if m is None or Path(text).exists():
        return None
    if m.group(1) not in KINDS:
        raise ConfigError(f"{text}: unknown dataset {m.group(1)!r}; use {', '.join(k + ':PATH' for k in KINDS)}")
    return m.group(1), Path(m.group(2))


class _Source:
    """The files of one version, from its folder or its .tar.gz (read in one streaming pass)."""

    def __init__(self, layout: Layout, where: Path, members: dict[str, bytes] | None = None):
        self.layout, self.where, self.members = layout, where, members

    def name(self, file: str) -> str:
        return f"{self.where} ({self.layout.folder}/{file})" if self.members is not None else str(self.where / file)

    def read(self, file: str, kind: str) -> bytes:
        if self.members is not None:
            if file in self.members:
                return self.members[file]
        elif (self.where / file).is_file():
            return (self.where / file).read_bytes()
        wanted = ", ".join((*self.layout.train, *self.layout.test, self.layout.meta))
        raise DataError(f"{self.name(file)}: missing; the {KINDS[kind]} {self.layout.version} version has {wanted}; "
                        f"extract {self.layout.archive} again, or download it from {URL}")


def _from_archive(path: Path, kind: str) -> _Source:
    layouts = {lay.folder: lay for lay in LAYOUTS[kind]}
    found: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(path, "r|gz") as tar:  # members are read, never extracted: no path ever written
            for m in tar:
                parts = [p for p in PurePosixPath(m.name).parts if p != "."]
                if m.isfile() and len(parts) == 2 and parts[0] in layouts:
                    found.setdefault(parts[0], {})[parts[1]] = tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{path}: not a readable .tar.gz ({e}); download it again from {URL}") from None
    if not found:
        folders = " or ".join(f"{f}/" for f in layouts)
        raise DataError(f"{path}: not a {KINDS[kind]} archive (no {folders} inside); get one from {URL}")
    folder = next(iter(found))
    return _Source(layouts[folder], path, found[folder])


def locate(kind: str, path: str | os.PathLike) -> _Source:
    """The archive at `path`, the extracted folder at `path`, or either one inside the folder `path`."""
    path = Path(path)
    if path.is_file():
        return _from_archive(path, kind)
    if path.is_dir():
        for lay in LAYOUTS[kind]:
            if (path / lay.meta).is_file() or (path / lay.train[0]).is_file():
                return _Source(lay, path)
            if (path / lay.folder).is_dir():
                return _Source(lay, path / lay.folder)
        for lay in LAYOUTS[kind]:
            if (path / lay.archive).is_file():
                return _from_archive(path / lay.archive, kind)
    what = " or ".join(f"{lay.archive} (or its folder {lay.folder}/)" for lay in LAYOUTS[kind])
    state = "has no" if path.is_dir() else "does not exist; expected"
    raise DataError(f"{path}: {state} {what}; download {KINDS[kind]} from {URL} (nothing is downloaded for you)")


def _numpy_names() -> dict[tuple[str, str], object]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    # Exactly what a CIFAR pickle names (numpy 1 wrote numpy.core, numpy 2 writes numpy._core).
    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class CifarUnpickler(pickle.Unpickler):
    """Loads dicts, lists, bytes, numbers and numpy arrays; any other global is refused before it is
    looked up, so a pickle whose reduce is os.system (or anything else) never gets to call it."""

    def __init__(self, data: bytes, where: str):
        super().__init__(io.BytesIO(data), encoding="bytes")  # written by Python 2: str keys are bytes
        self.where = where
        self.allowed = _numpy_names()

    def find_class(self, module: str, name: str) -> object:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise DataError(f"{self.where}: refused: the pickle asks for {module}.{name}, which no CIFAR file "
                            f"contains (nothing in it was run); use the archive from {URL}")
        return obj


def load_pickle(data: bytes, where: str) -> dict[str, object]:
    """A CIFAR pickle as a dict with str keys."""
    try:
        obj = CifarUnpickler(data, where).load()
    except DataError:
        raise
    except Exception as e:  # a truncated or foreign pickle fails in many ways; each is one line
        raise DataError(f"{where}: not a readable CIFAR pickle ({type(e).__name__}: {e}); "
                        f"extract it again, or download it from {URL}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a CIFAR pickle holds a dict, this one a {type(obj).__name__}")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _class_names(src: _Source, kind: str) -> tuple[str, ...]:
    where, raw = src.name(src.layout.meta), src.read(src.layout.meta, kind)
    if src.layout.version == "binary":
        names = [ln.strip() for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    else:
        key = {"cifar10": "label_names", "cifar100": "fine_label_names"}.get(kind, "coarse_label_names")
        names = load_pickle(raw, where).get(key)
        if not isinstance(names, list):
            raise DataError(f"{where}: has no {key} list")
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
    bad = [n for n in names if n.startswith(".") or "/" in n or "\\" in n]
    if len(names) < 2 or bad or len(set(names)) != len(names):
        raise DataError(f"{where}: class names must be at least two, distinct, usable as folder names; "
                        f"got {names[:5]}{' ...' if len(names) > 5 else ''}")
    return tuple(names)


def _binary_batch(raw: bytes, where: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    width = 1 if kind == "cifar10" else 2  # CIFAR-100 records: coarse label, fine label
    size = width + PIXELS
    n, left = divmod(len(raw), size)
    if left or n == 0:
        raise DataError(f"{where}: truncated: {len(raw)} bytes are {n} complete records of {size} bytes and "
                        f"{left} bytes over; extract it again, or download it from {URL}")
    rec = np.frombuffer(raw, np.uint8).reshape(n, size)
    return rec[:, width:], rec[:, 0 if kind != "cifar100" else 1].astype(np.int64)


def _python_batch(raw: bytes, where: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    d = load_pickle(raw, where)
    key = {"cifar10": "labels", "cifar100": "fine_labels"}.get(kind, "coarse_labels")
    data, labels = d.get("data"), d.get(key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataError(f"{where}: 'data' is not an N x {PIXELS} uint8 array")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key!r} is not a list of integer labels") from None
    if len(labels) != len(data):
        raise DataError(f"{where}: {len(data)} images but {len(labels)} {key}")
    return data, labels


def _split(src: _Source, kind: str, files: tuple[str, ...], classes: tuple[str, ...]) -> CifarSplit:
    decode = _binary_batch if src.layout.version == "binary" else _python_batch
    images, labels = [], []
    for f in files:
        data, y = decode(src.read(f, kind), src.name(f), kind)
        bad = np.flatnonzero((y < 0) | (y >= len(classes)))
        if bad.size:
            raise DataError(f"{src.name(f)}: record {bad[0]} has label {y[bad[0]]}, but "
                            f"{src.name(src.layout.meta)} names {len(classes)} classes")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # planes -> HWC, RGB
        labels.append(y)
    return CifarSplit(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))


def read_cifar(kind: str, path: str | os.PathLike) -> CifarSet:
    """Both splits of the CIFAR `kind` ("cifar10", "cifar100", "cifar100-coarse") found at `path`."""
    if kind not in KINDS:
        raise ConfigError(f"unknown dataset {kind!r}; use one of {', '.join(KINDS)}")
    src = locate(kind, path)
    classes = _class_names(src, kind)
    return CifarSet(kind, classes, _split(src, kind, src.layout.train, classes),
                    _split(src, kind, src.layout.test, classes))


def write_class_folders(data: CifarSet, dst: str | os.PathLike, *, workers: int | None = None,
                        console=None) -> tuple[int, int]:
    """DST/train/<class>/NNNNN.png and DST/test/<class>/NNNNN.png (NNNNN: the record's index in its
    split, so the python and binary versions write the same files), each written atomically; a file
    already there is kept, so a rerun after a crash fills in the rest. -> (written, already there)."""
    import cv2

    dst = Path(dst)
    jobs = [(split, i, dst / name / data.classes[y] / f"{i:05d}.png")
            for name, split in (("train", data.train), ("test", data.test)) for i, y in enumerate(split.labels)]
    todo = [j for j in jobs if not j[2].exists()]

    def one(job: tuple[CifarSplit, int, Path]) -> None:
        split, i, path = job
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(split.images[i][:, :, ::-1]))  # OpenCV writes BGR
        if not ok:
            raise DataError(f"{path}: could not encode the PNG")
        atomic_write(path, buf.tobytes())

    with bar(console, "prepare", len(todo)) as tick, ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as p:
        for done, _ in enumerate(p.map(one, todo), 1):
            tick(done, {})
    return len(todo), len(jobs) - len(todo)
