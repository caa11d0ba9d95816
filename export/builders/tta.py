"""--tta-flip: horizontal-flip test-time averaging built into the model before export, so every
artifact (TorchScript, ONNX and what derives from it) takes one image and returns
mean(logits(x), logits(flip_w(x))): two passes inside the graph, nothing new for the runtime.
Parity's reference is this wrapped eager model, so the gates still prove the artifacts' sameness."""

from __future__ import annotations

import torch
from torch import nn

TTA_NAME = "hflip"  # metadata extra["tta"]


class FlipAverage(nn.Module):
    """Averages logits, not probabilities: the mean of two logit vectors is still a logit vector,
    so the runtime's softmax(logits / T) and every parity figure apply unchanged."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Two calls of one module: the exported graph shares the weights, it does not copy them.
        return (self.model(x) + self.model(torch.flip(x, dims=[3]))) * 0.5


def with_tta(model: nn.Module, flip: bool) -> nn.Module:
    return FlipAverage(model).eval() if flip else model
