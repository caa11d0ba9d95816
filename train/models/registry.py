"""A strict model registry: one name, one builder, one default PreprocessSpec (the preprocessing
config travels with the weights). Duplicate names are a bug, so they raise. An arch whose spec
resizes in a way torchvision's augmentation cannot (OpenCV's "area") names the interpolation it
trains with; the spec, and so validation and inference, keep their own."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from catdog.runtime.spine.errors import CatdogError, CheckpointError, ConfigError
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.recipe import RESERVED_ARCH_KWARGS


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]  # builder(num_classes, pretrained=False, weights=None, **kw) -> nn.Module
    spec: PreprocessSpec
    train_interpolation: str | None = None  # None: training resizes as the spec does

    @property
    def options(self) -> tuple[str, ...]:
        """The builder's own keyword options (what --arch-kw may set); its **_ takes old checkpoints' extras."""
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(sorted(p.name for p in inspect.signature(self.builder).parameters.values()
                            if p.kind in named and p.name not in RESERVED_ARCH_KWARGS))

    def check_kwargs(self, kwargs: dict[str, Any], error: type[CatdogError] = ConfigError) -> None:
        """A key the builder does not take would be swallowed by its **_ (a typo trains the default);
        the trainer's own (num_classes, pretrained, weights) are TrainConfig's to refuse."""
        unknown = sorted(set(kwargs) - set(self.options) - set(RESERVED_ARCH_KWARGS))
        if unknown:
            raise error(f"--arch-kw {unknown[0]}: {self.name} takes no such option; known: "
                        f"{', '.join(self.options) or 'none'}")

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
