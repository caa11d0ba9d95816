"""AlexNet family. `alexnet` is torchvision's layout (224 px; 227 gives the same 6x6 feature map);
`alexnet_s0` is the seed's from-scratch variant (dropout 0.2, Kaiming init); `alexnet_cifar` is a
32x32 variant whose classifier input is computed from the feature map, not hard-coded. Both take
`width` (--arch-kw width=0.5: every conv and hidden layer has that fraction of the channels, e.g.
the seeds' half-width AlexNet; 1, the default, is the layout above and the only one ImageNet
weights fit)."""

from __future__ import annotations

import torch
from torch import nn

from catdog.runtime.spine.errors import CheckpointError
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.models.registry import register_model
from catdog.train.models.weights import load_backbone_weights, load_into, torchvision_state_dict

ALEXNET_SPEC = PreprocessSpec(size=224, resize=256, interpolation="bilinear")
ALEXNET_S0_SPEC = PreprocessSpec(size=227, resize=256, interpolation="bilinear")
# Inference shrinks whole photos to 32 px with OpenCV's area filter; torchvision has no area mode, so
# the augmentation uses antialiased bilinear (its closest filter for a downscale), said here, not implied.
CIFAR_SPEC = PreprocessSpec(size=32, resize=32, interpolation="area")


CONVS, HIDDEN = (64, 192, 384, 256, 256), 4096  # AlexNet's channels and hidden width at width 1


def _widths(width: float, arch: str) -> tuple[tuple[int, ...], int]:
    """The conv channels and the hidden width at `width` (each at least 1)."""
    if not isinstance(width, (int, float)) or not 0 < width <= 4:
        raise CheckpointError(f"{arch}: width is a channel multiplier in (0, 4], e.g. 0.5; got {width!r}")
    return tuple(max(1, round(c * width)) for c in CONVS), max(1, round(HIDDEN * width))


def _features(convs: tuple[int, ...], stem: tuple[int, int, int], second: int, pool: tuple[int, int]) -> nn.Sequential:
    """AlexNet's five convs and three max-pools at torchvision's module indices (stem: kernel, stride,
    padding; second: the second conv's kernel; pool: the max-pools' kernel and stride)."""
    c1, c2, c3, c4, c5 = convs
    return nn.Sequential(
        nn.Conv2d(3, c1, *stem), nn.ReLU(inplace=True), nn.MaxPool2d(*pool),
        nn.Conv2d(c1, c2, second, padding=second // 2), nn.ReLU(inplace=True), nn.MaxPool2d(*pool),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(*pool),
    )


def _classifier(flat: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, num_classes))


class AlexNetWidth(nn.Module):
    """torchvision's AlexNet layout (same module names, so `classifier.6` is the head) at another width."""

    def __init__(self, num_classes: int, width: float, dropout: float):
        super().__init__()
        convs, hidden = _widths(width, "alexnet_s0")
        self.features = _features(convs, (11, 4, 2), 5, (3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(convs[-1] * 36, hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def kaiming_init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


@register_model("alexnet", ALEXNET_SPEC)
def alexnet(num_classes: int, *, pretrained: bool = False, weights: str | None = None, dropout: float = 0.5,
            **_) -> nn.Module:
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as tv_alexnet

    model = tv_alexnet(num_classes=num_classes, dropout=dropout)
    if weights:
        load_backbone_weights(model, weights, head="classifier.6")
    elif pretrained:
        load_into(model, torchvision_state_dict(AlexNet_Weights.IMAGENET1K_V1, "alexnet"), "classifier.6", "alexnet")
    return model


@register_model("alexnet_s0", ALEXNET_S0_SPEC)
def alexnet_s0(num_classes: int = 2, *, pretrained: bool = False, weights: str | None = None, dropout: float = 0.2,
               width: float = 1.0, **_) -> nn.Module:
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as tv_alexnet

    if width != 1 and pretrained and not weights:
        raise CheckpointError(f"alexnet_s0 width={width}: ImageNet weights exist at width 1 only; "
                              "drop --pretrained or the width")
    full = width == 1  # torchvision's own module, exactly as before widths existed
    model = kaiming_init(tv_alexnet(num_classes=num_classes, dropout=dropout) if full
                         else AlexNetWidth(num_classes, width, dropout))
    if weights:
        load_backbone_weights(model, weights, head="classifier.6")
    elif pretrained:  # same layout as torchvision's, so its ImageNet backbone fits
        sd = torchvision_state_dict(AlexNet_Weights.IMAGENET1K_V1, "alexnet_s0")
        load_into(model, sd, "classifier.6", "alexnet_s0")
    return model


class AlexNetCifar(nn.Module):
    def __init__(self, num_classes: int = 10, size: int = 32, dropout: float = 0.5, width: float = 1.0):
        super().__init__()
        convs, hidden = _widths(width, "alexnet_cifar")
        self.features = _features(convs, (3, 2, 1), 3, (2, 2))
        with torch.no_grad():  # the classifier's input follows from the input size
            flat = self.features(torch.zeros(1, 3, size, size)).numel()
        self.classifier = _classifier(flat, hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("alexnet_cifar", CIFAR_SPEC, train_interpolation="bilinear")
def alexnet_cifar(num_classes: int, *, pretrained: bool = False, weights: str | None = None, size: int = 32,
                  dropout: float = 0.5, width: float = 1.0, **_) -> nn.Module:
    if pretrained and not weights:
        raise CheckpointError("alexnet_cifar has no published pretrained weights; "
                              "drop --pretrained or pass --weights PATH")
    model = kaiming_init(AlexNetCifar(num_classes, size, dropout, width))
    if weights:
        load_backbone_weights(model, weights, head="classifier.6")
    return model
