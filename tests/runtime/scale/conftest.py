"""Ray test fixtures: real photos with broken files among them, the single-process reference
(`catdog-runtime --json` with the shipped model), and one real 2-CPU Ray head per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from testkit.scale import RayHead, json_rows, run_cli


@pytest.fixture(scope="session")
def photos(data_dir) -> list[Path]:
    return sorted(data_dir.glob("*.jpg"))


@pytest.fixture(scope="session")
def messy(tmp_path_factory, photos) -> Path:
    """Real photos (the CMYK one included) plus testkit.scale.BROKEN."""
    d = tmp_path_factory.mktemp("messy")
    for p in photos:
        shutil.copyfile(p, d / p.name)
    jpg = photos[0].read_bytes()
    (d / "zero.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (d / "text.jpg").write_text("not a photo, just text\n")
    return d


@pytest.fixture(scope="session")
def reference(messy) -> dict[str, dict]:
    """Single-process `catdog-runtime FOLDER --json`: file name -> its JSON line."""
    r = run_cli(messy, "--json")
    assert r.returncode == 1, r.stderr  # the broken files failed, the rest ran
    rows = {os.path.basename(x["source"]): x for x in json_rows(r.stdout)}
    assert len(rows) == len(os.listdir(messy))
    return rows


@pytest.fixture(scope="session")
def ray_head():
    """One head for the session (test_scale.py's cluster runs, test_scale_resume.py's resumes): a local
    Ray costs each run ~4 s more to start than a job on a running head."""
    head = RayHead(cpus=2, gpus=1)  # the one GPU is declared only: see test_an_actor_that_cannot_start...
    yield head.address
    head.stop()
