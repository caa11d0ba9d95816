"""Shared test helpers. Tests use real photos copied into tests/data (never ../shared).

scripts/ goes on sys.path: the helpers that scripts/bad_inputs.py shares with the tests (synthetic
models and inputs, a real full disk) live there, because scripts never import the tests and test
helpers do not ship in the product; tests/testkit re-exports them."""

import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")
if SCRIPTS not in sys.path:
    sys.path.append(SCRIPTS)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def dog_jpg() -> Path:
    return DATA / "dog.jpg"
