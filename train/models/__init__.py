"""Importing this package registers every model family."""

from catdog.train.models import alexnet, efficientnet_lite, mobilenet, resnet  # noqa: F401  (registers)
from catdog.train.models.registry import get_entry, get_model, list_models, register_model

__all__ = ["get_entry", "get_model", "list_models", "register_model"]
