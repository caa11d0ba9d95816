"""Output folders a command creates for itself (--out of catdog-train and catdog-export): when the
command fails before writing anything into them, they are removed again, so a typo'd run or a bad
checkpoint leaves no empty folder behind. Only folders that did not exist when the command started
are candidates, and only while empty (os.rmdir refuses a folder with anything in it): a folder the
user already had, or one holding any file, is never touched. Imports no torch (catdog-export's CLI
uses it before loading torch)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def missing_levels(path: str | os.PathLike) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first (what mkdir -p would create)."""
    p, out = Path(path).absolute(), []
    while not os.path.lexists(p) and p != p.parent:  # lexists: a dangling symlink is the user's, not ours
        out.append(p)
        p = p.parent
    return out


def remove_if_empty(created: list[Path]) -> list[Path]:
    """rmdir each of `created` (deepest first) while they are empty folders; -> those removed."""
    removed = []
    for d in created:
        try:
            os.rmdir(d)
        except OSError:  # not empty (something was written), already gone, or not ours to remove
            break
        removed.append(d)
    return removed


@contextmanager
def removed_if_unused(path: str | os.PathLike) -> Iterator[None]:
    """Around a command that may create `path`: on any failure (Ctrl-C included), remove the folders it
    created there if they are still empty. On success they stay, empty or not."""
    created = missing_levels(path)
    try:
        yield
    except BaseException:
        remove_if_empty(created)
        raise
