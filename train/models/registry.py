"""A strict model registry: one name, one builder, one default PreprocessSpec (the preprocessing
config travels with the weights). Duplicate names are a bug, so they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from catdog.runtime.errors import CheckpointError
from catdog.runtime.spec import PreprocessSpec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]  # builder(num_classes, pretrained=False, weights=None, **kw) -> nn.Module
    spec: PreprocessSpec


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, spec: PreprocessSpec) -> Callable:
    def wrap(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, builder, spec)
        return builder

    return wrap


def get_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise CheckpointError(f"unknown arch {name!r}; known: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def get_model(name: str, num_classes: int, **kwargs: Any):
    return get_entry(name).builder(num_classes, **kwargs)


def list_models() -> list[str]:
    return sorted(_MODELS)
