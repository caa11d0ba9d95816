"""`prepare`: a flat Kaggle folder -> class folders (copy by default; --move only when asked), or a
shorter-side-N JPEG cache for fast training. `stats`: per-channel mean/std of a dataset.
Originals are never modified; every output file is written atomically, so a rerun after a crash
just fills in what is missing."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog.runtime.spine.errors import ConfigError, InputError
from catdog.runtime.spine.fileio import atomic_path
from catdog.runtime.spine.folders import scan
from catdog.runtime.spine.images import read_image
from catdog.train.options import PrepareOptions, StatsOptions
from catdog.train.plumbing.progress import bar


@dataclass
class PrepareReport:
    written: int = 0
    existing: int = 0
    bad: list[str] = field(default_factory=list)


def _resized_jpeg(src: Path, dst: Path, short: int) -> None:
    import cv2

    img = read_image(src)
    h, w = img.shape[:2]
    if min(h, w) > short:
        f = short / min(h, w)
        size = (max(short, round(w * f)), max(short, round(h * f)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise InputError(f"{src}: could not encode the resized copy")
    with atomic_path(dst) as tmp:
        tmp.write_bytes(buf.tobytes())


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def prepare(src: str | os.PathLike, dst: str | os.PathLike, *, move: bool = PrepareOptions.move,
            resize: int | None = PrepareOptions.resize,
            workers: int | None = None, console=None) -> PrepareReport:
    """Lay `src` (flat or class folders) out as `dst/<class>/<file>`; `cifar10:PATH` (cifar100:,
    cifar100-coarse:) writes that CIFAR archive or folder as PNGs in `dst/train/<class>/`, `dst/test/<class>/`."""
    from catdog.train.data.cifar import parse_source

    cifar = parse_source(src)
    if cifar is not None:
        return _prepare_cifar(*cifar, Path(dst), move=move, resize=resize, workers=workers, console=console)
    src, dst = Path(src), Path(dst)
    if move and resize:
        raise ConfigError("--move with --resize would delete the full-size originals; use one or the other")
    if resize is not None and resize < 8:
        raise ConfigError(f"--resize must be a shorter-side length in pixels (e.g. 256), got {resize}")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ConfigError(f"{dst}: the destination must not be inside the source folder {src}")
    data = scan(src)
    jobs = []
    for path, y in data.samples:
        p = Path(path)
        name = p.stem + ".jpg" if resize else p.name
        jobs.append((p, dst / data.classes[y] / name))
    report = PrepareReport()
    todo = []
    for s, d in jobs:
        if d.exists():
            report.existing += 1
        else:
            todo.append((s, d))

    def one(job: tuple[Path, Path]) -> str | None:
        s, d = job
        try:
            if resize:
                _resized_jpeg(s, d, resize)
            elif move:
                d.parent.mkdir(parents=True, exist_ok=True)
                os.replace(s, d) if s.stat().st_dev == d.parent.stat().st_dev else shutil.move(s, d)
            else:
                _copy(s, d)
        except InputError as e:
            return str(e)
        return None

    threads = workers or min(8, os.cpu_count() or 1)
    with bar(console, "prepare", len(todo)) as tick, ThreadPoolExecutor(threads) as pool:
        for i, err in enumerate(pool.map(one, todo), 1):
            if err:
                report.bad.append(err)
            else:
                report.written += 1
            tick(i, {})
    return report


def _prepare_cifar(kind: str, src: Path, dst: Path, *, move: bool, resize: int | None, workers: int | None,
                   console) -> PrepareReport:
    from catdog.train.data.cifar import read_cifar, write_class_folders

    if move or resize:  # the archive is read, never changed; its images are 32x32 by definition
        raise ConfigError(f"--{'move' if move else 'resize'} does not apply to {kind}: its images are written "
                          "as 32x32 PNGs and the archive is only read")
    written, existing = write_class_folders(read_cifar(kind, src), dst, workers=workers, console=console)
    return PrepareReport(written=written, existing=existing)


def channel_stats(root: str | os.PathLike, short: int = StatsOptions.short, console=None) -> dict:
    """Per-channel mean/std in RGB order, pixels scaled to [0, 1], over every image (each resized to
    a shorter side of `short` px first: the statistics barely change and it is many times faster).
    Unreadable images are skipped and listed."""
    import cv2

    data = scan(root)
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    bad = []

    def load(path: str) -> np.ndarray | str:
        try:
            img = read_image(path)
        except InputError as e:
            return str(e)
        h, w = img.shape[:2]
        f = short / min(h, w)
        if f < 1:
            img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return img[:, :, ::-1].reshape(-1, 3).astype(np.float64) / 255.0

    with bar(console, "stats", len(data.samples)) as tick, ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for i, px in enumerate(pool.map(load, [p for p, _ in data.samples]), 1):
            if isinstance(px, str):
                bad.append(px)
            else:
                total += px.sum(0)
                squares += (px * px).sum(0)
                count += len(px)
            tick(i, {})
    if count == 0:
        raise InputError(f"{root}: none of the {len(data.samples)} images could be read")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return {"mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std],
            "channel_order": "RGB", "images": len(data.samples) - len(bad), "skipped": bad}
