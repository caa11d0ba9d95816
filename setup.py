"""Package discovery for the fixed layout: the stage folders (train/, export/, runtime/,
benchmarks/) sit at the repo root but install as catdog.<stage>, so every folder holding an
__init__.py below them becomes a package under that name. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

STAGES = ("train", "export", "runtime", "benchmarks")
found = find_packages(include=[f"{s}*" for s in STAGES])  # "runtime", "runtime.spine", ...
setup(packages=[f"catdog.{p}" for p in found],
      package_dir={f"catdog.{p}": p.replace(".", "/") for p in found})
