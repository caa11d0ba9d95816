"""A strict model registry: one name, one builder, one default PreprocessSpec (the preprocessing
config travels with the weights). Duplicate names are a bug, so they raise. An arch whose spec
resizes in a way torchvision's augmentation cannot (OpenCV's "area") names the interpolation it
trains with; the spec, and so validation and inference, keep their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from catdog.runtime.spine.errors import CatdogError, CheckpointError
from catdog.runtime.spine.spec import PreprocessSpec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]  # builder(num_classes, pretrained=False, weights=None, **kw) -> nn.Module
    spec: PreprocessSpec
    train_interpolation: str | None = None  # None: training resizes as the spec does

    def train_spec(self, spec: PreprocessSpec) -> PreprocessSpec:
        """`spec` (this arch's, possibly resized) as the training augmentation uses it."""
        return spec.with_(interpolation=self.train_interpolation) if self.train_interpolation else spec


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, spec: PreprocessSpec, train_interpolation: str | None = None) -> Callable:
    def wrap(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, builder, spec, train_interpolation)
        return builder

    return wrap


def get_entry(name: str, error: type[CatdogError] = CheckpointError) -> ModelEntry:
    """The entry of `name`. Whose mistake an unknown name is, the caller says: an arch a checkpoint
    names is a broken checkpoint (CheckpointError), one given as --arch a ConfigError."""
    if name not in _MODELS:
        raise error(f"unknown arch {name!r}; known: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def get_model(name: str, num_classes: int, **kwargs: Any):
    return get_entry(name).builder(num_classes, **kwargs)


def list_models() -> list[str]:
    return sorted(_MODELS)
