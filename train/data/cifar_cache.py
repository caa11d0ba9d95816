"""`catdog-train --data cifar10:PATH` (cifar100:, cifar100-coarse:): the archive or its folder is
written once, by prepare's own code (cifar.write_class_folders), as PNG class folders in a cache,
and the run trains from those folders like from any others, so no stage grows a CIFAR path of its
own. The cache is $CATDOG_DATA_CACHE, else $XDG_CACHE_HOME/catdog-edge/datasets (~/.cache/...),
one folder per source (its kind, resolved path, size and modification time): a changed archive is
written again, and an interrupted write is finished on the next run (complete.json marks a done one).
The validation split is CIFAR's own test batch unless --val (or --val-fraction) is given."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from catdog.runtime.spine.fileio import atomic_write
from catdog.train.data.cifar import KINDS, locate, parse_source, read_cifar, write_class_folders
from catdog.train.options import TrainOptions

DONE = "complete.json"


def cache_root() -> Path:
    if os.environ.get("CATDOG_DATA_CACHE"):
        return Path(os.environ["CATDOG_DATA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catdog-edge" / "datasets"


def cached(kind: str, path: Path, console: Any = None) -> tuple[Path, dict[str, Any]]:
    """(the cache folder holding train/ and test/, what complete.json says) for the CIFAR `kind` at `path`."""
    if not path.exists():
        locate(kind, path)  # refused, saying where to get it
    st = path.stat()
    key = hashlib.sha256(f"{kind}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dst = cache_root() / f"{kind}-{key}"
    if (dst / DONE).is_file():
        try:
            return dst, json.loads((dst / DONE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # a damaged marker: write (fill in) again
    data = read_cifar(kind, path)
    write_class_folders(data, dst, console=console)
    info = {"kind": kind, "source": str(path.resolve()), "classes": list(data.classes),
            "train": int(len(data.train.labels)), "test": int(len(data.test.labels))}
    atomic_write(dst / DONE, json.dumps(info, indent=2) + "\n")
    return dst, info


def with_cifar(opts: TrainOptions, say: Callable[[str], None], *, val: bool = True) -> TrainOptions:
    """opts with a cifar10:PATH --data replaced by the cache's train/ folder and, when `val` and
    neither --val nor --val-fraction was given, --val by its test/ folder (CIFAR's own test batch)."""
    cfg = opts.recipe
    source = parse_source(cfg.data) if cfg.data else None
    if source is None:
        return opts
    kind, path = source
    folder, info = cached(kind, path, console=None if opts.quiet else _console())
    changes: dict[str, Any] = {"data": str(folder / "train")}
    if cfg.val:
        held = f"--val {cfg.val}"
    elif not val:
        held = "folds of the train split"
    elif "val_fraction" in opts.given:
        held = f"a seeded {cfg.val_fraction:g} of the train split (--val-fraction)"
    else:
        changes["val"] = str(folder / "test")
        held = f"{KINDS[kind]}'s own test batch ({info['test']} images, {folder / 'test'})"
    say(f"{cfg.data}: {info['train']} train / {info['test']} test images, {len(info['classes'])} classes, "
        f"as class folders in {folder}; validation: {held}")
    return dataclasses.replace(opts, recipe=cfg.with_(**changes))


def _console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)
