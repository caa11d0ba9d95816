"""AlexNet family. `alexnet` is torchvision's layout (224 px; 227 gives the same 6x6 feature map);
`alexnet_s0` is the seed's from-scratch variant (dropout 0.2, Kaiming init); `alexnet_cifar` is a
32x32 variant whose classifier input is computed from the feature map, not hard-coded."""

from __future__ import annotations

import torch
from torch import nn

from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.models.registry import register_model
from catdog.train.models.weights import load_backbone_weights, load_into, torchvision_state_dict

ALEXNET_SPEC = PreprocessSpec(size=224, resize=256, interpolation="bilinear")
ALEXNET_S0_SPEC = PreprocessSpec(size=227, resize=256, interpolation="bilinear")
# Inference shrinks whole photos to 32 px with OpenCV's area filter; torchvision has no area mode, so
# the augmentation uses antialiased bilinear (its closest filter for a downscale), said here, not implied.
CIFAR_SPEC = PreprocessSpec(size=32, resize=32, interpolation="area")


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
               **_) -> nn.Module:
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as tv_alexnet

    model = kaiming_init(tv_alexnet(num_classes=num_classes, dropout=dropout))
    if weights:
        load_backbone_weights(model, weights, head="classifier.6")
    elif pretrained:  # same layout as torchvision's, so its ImageNet backbone fits
        sd = torchvision_state_dict(AlexNet_Weights.IMAGENET1K_V1, "alexnet_s0")
        load_into(model, sd, "classifier.6", "alexnet_s0")
    return model


class AlexNetCifar(nn.Module):
    def __init__(self, num_classes: int = 10, size: int = 32, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        with torch.no_grad():  # the classifier's input follows from the input size
            flat = self.features(torch.zeros(1, 3, size, size)).numel()
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(flat, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("alexnet_cifar", CIFAR_SPEC, train_interpolation="bilinear")
def alexnet_cifar(num_classes: int, *, pretrained: bool = False, weights: str | None = None, size: int = 32,
                  dropout: float = 0.5, **_) -> nn.Module:
    if pretrained and not weights:
        from catdog.runtime.spine.errors import CheckpointError

        raise CheckpointError("alexnet_cifar has no published pretrained weights; "
                              "drop --pretrained or pass --weights PATH")
    model = kaiming_init(AlexNetCifar(num_classes, size, dropout))
    if weights:
        load_backbone_weights(model, weights, head="classifier.6")
    return model
