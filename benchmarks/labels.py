"""Labeled image folders: Kaggle flat names (cat.12.jpg -> "cat") or one folder per class."""

from __future__ import annotations

from pathlib import Path

from catdog.runtime.errors import DataError
from catdog.runtime.files import IMAGE_SUFFIXES, flat_label


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def labeled_images(folder: Path, limit: int | None = None) -> list[tuple[Path, str]]:
    """(path, label) pairs, sorted by path. Class folders win when the folder has subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give a folder of labeled photos")
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    pairs: list[tuple[Path, str]] = []
    if subdirs:
        for d in subdirs:
            pairs += [(p, d.name) for p in _images(d)]
    else:
        for p in _images(folder):
            label = flat_label(p.name)
            if label is None:
                raise DataError(f"{p}: cannot tell its label; name files like cat.12.jpg or use class folders")
            pairs.append((p, label))
    if not pairs:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if limit is not None:  # keep classes balanced-ish: interleave by label before cutting
        by: dict[str, list[tuple[Path, str]]] = {}
        for pair in pairs:
            by.setdefault(pair[1], []).append(pair)
        mixed = [x for group in zip(*by.values()) for x in group] if len(by) > 1 else pairs
        pairs = sorted(mixed[:limit])
    return pairs
