"""ResNet-18 with the seed's head (512 -> 256 -> ReLU -> Dropout(0.5) -> N) and three training
modes: `full` (everything trains), `frozen` (feature extraction: only the head trains and the
backbone's BatchNorm keeps its ImageNet statistics), `progressive` (the head first, then layer4,
layer3, ... one more stage every `unfreeze_every` epochs; loop/fit.py calls set_epoch)."""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from catdog.runtime.spine.errors import CheckpointError
from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.models.registry import register_model
from catdog.train.models.weights import load_backbone_weights, load_into, torchvision_state_dict

RESNET_SPEC = PreprocessSpec(size=224, resize=256, interpolation="bilinear")
MODES = ("full", "frozen", "progressive")
# Unfreezing order for `progressive`: deepest (most task-specific) stage first.
STAGES = ("layer4", "layer3", "layer2", "layer1", "stem")


class ResNet18(ResNet):
    def __init__(self, num_classes: int, mode: str = "full", unfreeze_every: int = 1, dropout: float = 0.5):
        if mode not in MODES:
            raise CheckpointError(f"resnet18: unknown mode {mode!r}; known: {', '.join(MODES)}")
        super().__init__(BasicBlock, [2, 2, 2, 2])
        self.fc = nn.Sequential(nn.Linear(512, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                nn.Linear(256, num_classes))
        self.mode = mode
        self.unfreeze_every = max(1, int(unfreeze_every))
        self.trainable: tuple[str, ...] = STAGES if mode == "full" else ()
        self._apply_freeze()

    def _stage(self, name: str) -> list[nn.Module]:
        return [self.conv1, self.bn1] if name == "stem" else [getattr(self, name)]

    def _apply_freeze(self) -> None:
        for name in STAGES:
            for m in self._stage(name):
                m.requires_grad_(name in self.trainable)
        self.fc.requires_grad_(True)
        self.train(self.training)

    def set_epoch(self, epoch: int) -> None:
        """1-based epoch: progressive mode trains the head alone in epoch 1, then adds a stage."""
        if self.mode == "progressive":
            n = (epoch - 1) // self.unfreeze_every
            self.trainable = STAGES[: max(0, min(n, len(STAGES)))]
            self._apply_freeze()

    def train(self, mode: bool = True) -> "ResNet18":
        super().train(mode)
        for name in STAGES:  # frozen stages keep their BatchNorm statistics
            if name not in self.trainable:
                for m in self._stage(name):
                    m.eval()
        return self


@register_model("resnet18", RESNET_SPEC)
def resnet18(num_classes: int, *, pretrained: bool = False, weights: str | None = None, mode: str = "full",
             unfreeze_every: int = 1, dropout: float = 0.5, **_) -> nn.Module:
    from torchvision.models import ResNet18_Weights

    model = ResNet18(num_classes, mode, unfreeze_every, dropout)
    if weights:
        load_backbone_weights(model, weights, head="fc")
    elif pretrained:
        load_into(model, torchvision_state_dict(ResNet18_Weights.IMAGENET1K_V1, "resnet18"), "fc", "resnet18")
    return model
