"""The extras, checked on pyproject.toml and the docs: every install README.md and docs/ show, and every
extra that brings a runtime, pulls exactly one OpenCV wheel and one onnxruntime. opencv-python and
opencv-python-headless are one `cv2` module (two wheels in one env overwrite each other's files),
and so are onnxruntime and onnxruntime-gpu."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the 3.10 venv skips this file

REPO = Path(__file__).resolve().parents[1]
OPENCV = {"opencv-python", "opencv-python-headless"}
ORT = {"onnxruntime", "onnxruntime-gpu"}
RUNTIME_EXTRAS = ("cpu", "gui", "gpu", "ray", "dev", "runtime-test")


def _requirements(extras: tuple[str, ...]) -> set[str]:
    """The distribution names `.[extras]` asks for, following catdog-edge[...] inside the extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    out, todo, seen = set(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in project["optional-dependencies"][extra]:
            own = re.fullmatch(r"catdog-edge\[([\w,-]+)\]", req)
            if own:
                todo += own.group(1).split(",")
            else:
                out.add(req)
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in out}


INSTALL = re.compile(r"'\.\[([\w,-]+)\]'")


def _docs_text() -> str:
    return "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])


def _readme_installs() -> set[tuple[str, ...]]:
    """Every `pip install '.[a,b]'` (or `-e '.[...]'`) in README.md and docs/, as its extras."""
    text = _docs_text()
    return {tuple(m.group(1).split(",")) for m in INSTALL.finditer(text)}


def test_the_readme_shows_installs_and_never_two_runtime_extras_together():
    readme = {tuple(m.group(1).split(",")) for m in INSTALL.finditer((REPO / "README.md").read_text())}
    assert ("cpu",) in readme and ("dev",) in readme  # the two commands' installs stay in the README
    assert "[cpu,gui]" not in _docs_text()


ADDONS = ("serve",)  # extras that add to whichever runtime is there (a Jetson's comes from JetPack)


@pytest.mark.parametrize("extras", sorted({*_readme_installs(), *((e,) for e in RUNTIME_EXTRAS)}))
def test_each_install_pulls_exactly_one_opencv_and_one_onnxruntime(extras):
    reqs = _requirements(extras)
    if set(extras) <= set(ADDONS):  # an add-on alone brings no runtime, so it never brings a second one
        assert not reqs & (OPENCV | ORT), (extras, sorted(reqs & (OPENCV | ORT)))
        return
    assert len(reqs & OPENCV) == 1, (extras, sorted(reqs & OPENCV))
    assert len(reqs & ORT) == 1, (extras, sorted(reqs & ORT))
