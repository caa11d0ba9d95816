"""Loading a user's local state_dict (--weights PATH) into a registered model, safely."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from catdog.runtime.errors import CheckpointError


def load_backbone_weights(model: nn.Module, path: str | Path, head: str) -> None:
    """Load `path` (a state_dict, or a checkpoint dict with 'state_dict') with weights_only=True.
    Tensors of the classifier `head` whose shape differs (another class count) are skipped."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except Exception as e:  # pickled code, corrupt zip, ...
        raise CheckpointError(f"{path}: not a safe state_dict ({type(e).__name__}); only plain tensors load") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    own = model.state_dict()
    keep = {k: v for k, v in sd.items() if not (k.startswith(head + ".") and k in own and own[k].shape != v.shape)}
    missing, unexpected = model.load_state_dict(keep, strict=False)
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit this arch (missing {missing[:3]}, unexpected {list(unexpected)[:3]})"
        )
