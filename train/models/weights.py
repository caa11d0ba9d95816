"""Loading a user's local state_dict (--weights PATH) into a registered model, safely."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from catdog.runtime.spine.errors import CheckpointError, error_line


def load_backbone_weights(model: nn.Module, path: str | Path, head: str) -> None:
    """Load `path` (a state_dict, or a checkpoint dict with 'state_dict') with weights_only=True.
    Tensors of the classifier `head` whose shape differs (another class count) are skipped."""
    try:
        with warnings.catch_warnings():  # its unpickler's warnings on random bytes: nothing a user can act on
            warnings.simplefilter("ignore")
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except Exception as e:  # pickled code, corrupt zip, ...
        raise CheckpointError(f"{path}: not a safe state_dict ({type(e).__name__}); only plain tensors load") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    load_into(model, sd, head, str(path))


def load_into(model: nn.Module, sd: dict, head: str, source: str) -> None:
    """Load a backbone state_dict; the classifier `head` tensors are skipped when they do not fit
    (another class count, another head layout) so that head starts fresh."""
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{source}: not a state_dict (expected a dict of tensors)")
    own = model.state_dict()
    keep = {k: v for k, v in sd.items()
            if not (k.startswith(head + ".") and (k not in own or own[k].shape != v.shape))}
    try:
        missing, unexpected = model.load_state_dict(keep, strict=False)
    except RuntimeError as e:  # a backbone tensor of another shape: another arch or width
        raise CheckpointError(f"{source}: weights do not fit this arch ({error_line(e, 160, last=True)})") from None
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not fit this arch (missing {missing[:3]}, unexpected {list(unexpected)[:3]})"
        )


def torchvision_state_dict(weights_enum, arch: str) -> dict:
    """torchvision's ImageNet weights: from its cache, else downloaded. Offline -> a clear error."""
    try:
        return weights_enum.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # URLError, timeouts, HTTP errors, a corrupt cache file
        raise CheckpointError(
            f"--pretrained {arch}: could not get torchvision's ImageNet weights from {weights_enum.url} "
            f"({error_line(e, 120)}); "
            "go online once, or download that file and pass --weights PATH"
        ) from None
