"""Training fixtures: small real photos (the 12 test photos downscaled to 64 px with OpenCV, still
real JPEGs) laid out flat and as class folders, and broken files made at test time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

PHOTOS = sorted(p for p in (Path(__file__).parents[1] / "data").glob("*.*.jpg"))  # cat.168.jpg ...
REPO = Path(__file__).parents[2]


def small_copy(src: Path, dst: Path, short: int = 64) -> Path:
    img = cv2.imread(str(src))
    h, w = img.shape[:2]
    f = short / min(h, w)
    img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(dst), img)
    return dst


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    assert len(PHOTOS) == 12
    return PHOTOS


@pytest.fixture(scope="session")
def small_flat(tmp_path_factory, photos) -> Path:
    """Kaggle flat layout: cat.168.jpg, dog.169.jpg ... (6 + 6), 64 px. Read-only for tests."""
    root = tmp_path_factory.mktemp("flat")
    for p in photos:
        small_copy(p, root / p.name)
    return root


@pytest.fixture
def flat_copy(tmp_path, small_flat) -> Path:
    """A writable copy of small_flat (for tests that add broken files)."""
    dst = tmp_path / "flat"
    shutil.copytree(small_flat, dst)
    return dst


@pytest.fixture(scope="session")
def small_folders(tmp_path_factory, photos) -> Path:
    """Class-per-folder layout with three classes (any class count must work)."""
    root = tmp_path_factory.mktemp("folders")
    for i, p in enumerate(photos):
        cls = ("zebra", "apple", "mango")[i % 3]
        small_copy(p, root / cls / p.name)
    return root


def _run_cli(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "from catdog.train.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def train_cli():
    """catdog-train in a subprocess, through the console script's main()."""
    return _run_cli
