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


@pytest.fixture
def train_main(monkeypatch, capsys):
    """catdog-train's main() in this process, as train_cli runs it but without a new interpreter
    (torch and torchvision imported once, not per run): -> a CompletedProcess of its exit code,
    stdout and stderr."""
    from rich.console import Console

    from catdog.train import cli

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = ["catdog-train", *map(str, args)]
        capsys.readouterr()  # what the test printed before is not this run's output
        with monkeypatch.context() as m:
            m.setattr(sys, "argv", argv)
            m.setattr(cli, "err", Console(stderr=True, soft_wrap=True))  # bound to capsys' stderr
            try:
                cli.main()
                code = 0
            except SystemExit as e:
                code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run
