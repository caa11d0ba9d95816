"""The one folder reader. Training, export calibration and parity, the benchmarks and the runtime
all list images through here, so they can never see different files in the same folder.

Policy, in one place:
- an image is a file with a known suffix whose name does not start with "." (macOS `._cat.1.jpg`
  resource forks and other hidden files are never images), in a folder that is not hidden;
- a labelled folder is either flat, Kaggle-named (`cat.12.jpg` -> "cat"), or one folder per class
  with images anywhere below it; a folder that mixes loose images with class folders is an error,
  and so is an empty class folder beside others when the folders define the classes (it would drop its class);
- walks follow symlinked folders once each (a folder already seen, by device and inode, is
  skipped), so a symlink loop cannot trap them; results are sorted, so order is reproducible;
- one file reached under two classes (a link from one class folder into another) is an error;
- `read_images` decodes with the spine's `read_image` and reports each unreadable file in one line
  instead of failing the whole folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from catdog.runtime.spine.errors import DataError, InputError
from catdog.runtime.spine.images import IMAGE_SUFFIXES, read_image
from catdog.runtime.spine.spec import PreprocessSpec


def is_image_name(name: str) -> bool:
    """A visible file with an image suffix (the hidden-file policy of every stage)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def flat_label(name: str) -> str | None:
    """Kaggle naming: `cat.12.jpg` -> "cat". None when the name does not follow it."""
    parts = name.split(".")
    if len(parts) < 3 or not parts[0] or not parts[0][0].isalpha():
        return None
    return parts[0].lower()


def _listdir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise InputError(f"{folder}: cannot list folder ({e.strerror})") from None


def _is_dir(entry: os.DirEntry) -> bool:
    """A link that loops (x.jpg -> x.jpg) or points nowhere is not a folder: it stays in the list and
    becomes that file's own error when it is read, instead of ending the listing."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (and with `recursive`, in its visible subfolders), sorted."""
    folder = Path(folder)
    if not recursive:
        return [Path(e.path) for e in _listdir(folder) if is_image_name(e.name) and not _is_dir(e)]
    out: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []  # a symlink back into a folder already walked
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in sorted(files) if is_image_name(f)]
    return out


@dataclass(frozen=True)
class LabelledFolder:
    """The images of one labelled folder: class names (sorted, or the order a model fixes) and
    (path, class index) pairs sorted by class, then path."""

    root: Path
    layout: str  # "flat" | "folders"
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p, _ in self.samples]

    @property
    def labels(self) -> list[int]:
        return [y for _, y in self.samples]

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for _, y in self.samples:
            out[self.classes[y]] += 1
        return out

    def subset(self, samples: Iterable[tuple[str, int]]) -> "LabelledFolder":
        return LabelledFolder(self.root, self.layout, self.classes, tuple(sorted(samples)))


def scan(root: str | os.PathLike, classes: Sequence[str] | None = None) -> LabelledFolder:
    """Find the labelled images under `root`. `classes` (a model's or the training set's) fixes the
    label order; a class outside it is an error, so labels can never silently disagree."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass a folder of images (cat.1.jpg ...) or of class folders")
    entries = _listdir(root)
    folders = {e.name: list_images(e.path, recursive=True) for e in entries
               if e.is_dir() and not e.name.startswith(".")}
    by_class = {k: v for k, v in folders.items() if v}
    if by_class and classes is None:
        _refuse_empty_classes(root, [k for k, v in folders.items() if not v], len(by_class))
    loose = [Path(e.path) for e in entries if not e.is_dir() and is_image_name(e.name)]
    if by_class and loose:
        raise DataError(f"{root}: mixes class folders ({', '.join(list(by_class)[:3])}) with loose images "
                        f"({loose[0].name} ...); use one layout")
    layout = "folders" if by_class else "flat"
    if not by_class:
        if not loose:
            raise DataError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)}); check the path")
        unnamed = [p.name for p in loose if flat_label(p.name) is None]
        if unnamed:
            raise DataError(f"{root}: unknown layout: {len(unnamed)} image(s) like {unnamed[0]!r} are neither "
                            "named <class>.<id>.<ext> (cat.12.jpg) nor inside class folders")
        for p in loose:
            by_class.setdefault(flat_label(p.name), []).append(p)
    names = tuple(sorted(by_class)) if classes is None else tuple(classes)
    extra = sorted(set(by_class) - set(names))
    if extra:
        raise DataError(f"{root}: has {len(by_class)} classes {sorted(by_class)}, but the model has "
                        f"{len(names)}: {list(names)}; class names must match the training data")
    if classes is None and len(names) < 2:
        raise DataError(f"{root}: only one class ({names[0]!r}); a classifier needs at least two")
    _refuse_shared_images(root, by_class)
    index = {c: i for i, c in enumerate(names)}
    samples = tuple((str(p), index[c]) for c in sorted(by_class) for p in by_class[c])
    return LabelledFolder(root, layout, names, samples)


def _refuse_shared_images(root: Path, by_class: dict[str, list[Path]]) -> None:
    """One file (by device and inode) reached under two classes, through a symlinked folder
    (`cat/more -> ../dog`), a file link or a hard link, would be taught and scored as both. The same
    file twice within one class is left alone. A path that cannot be stat'ed is its reader's error."""
    seen: dict[tuple[int, int], tuple[str, Path]] = {}
    for cls in sorted(by_class):
        for p in by_class[cls]:
            try:
                st = os.stat(p)
            except OSError:
                continue
            first = seen.setdefault((st.st_dev, st.st_ino), (cls, p))
            if first[0] != cls:
                raise DataError(f"{root}: {p} and {first[1]} are the same image under two classes ({cls}, "
                                f"{first[0]}), through a link; give each photo one class: remove the link")


def _refuse_empty_classes(root: Path, empty: list[str], others: int) -> None:
    """Folder names are the class list when no model fixes it: an empty class folder would silently
    leave its class out of it (a 2-class model trained from cat/, dog/ and an empty bird/). With a
    model's classes (parity, evaluation, --val) the list is fixed and an empty folder changes nothing."""
    if not empty:
        return
    if len(empty) == 1:
        what, fix = f"{root / empty[0]}: class folder has", "add its images or remove the folder"
    else:
        names = ", ".join(empty[:3]) + (" ..." if len(empty) > 3 else "")
        what, fix = f"{root}: class folders {names} have", "add their images or remove the folders"
    raise DataError(f"{what} no images ({', '.join(IMAGE_SUFFIXES)}), so the classes would be only the other "
                    f"{others}; {fix}")


def has_class_folders(root: str | os.PathLike) -> bool:
    """Whether `root` holds visible subfolders with images (the class-folder layout)."""
    return any(e.is_dir() and not e.name.startswith(".") and list_images(e.path, recursive=True)
               for e in _listdir(Path(root)))


def read_images(paths: Sequence[str | os.PathLike], spec: PreprocessSpec | None = None
                ) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Decode each path with the spine's read_image (for `spec`: see files.decode_image): (indices of
    the readable ones, their BGR images, one message per unreadable file). A bad file is reported,
    never fatal."""
    kept, images, skipped = [], [], []
    for i, p in enumerate(paths):
        try:
            images.append(read_image(p, spec))
        except InputError as e:
            skipped.append(str(e))
            continue
        kept.append(i)
    return kept, images, skipped
