"""Shared test helpers. Tests use real photos copied into tests/data (never ../shared)."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def dog_jpg() -> Path:
    return DATA / "dog.jpg"
