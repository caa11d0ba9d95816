"""torchvision's MobileNetV3-Small (hardswish/hardsigmoid export to ONNX from opset 14)."""

from __future__ import annotations

from torch import nn

from catdog.runtime.spine.spec import PreprocessSpec
from catdog.train.models.registry import register_model
from catdog.train.models.weights import load_backbone_weights, load_into, torchvision_state_dict

MOBILENET_SPEC = PreprocessSpec(size=224, resize=256, interpolation="bilinear")


@register_model("mobilenet_v3_small", MOBILENET_SPEC)
def mobilenet_v3_small(num_classes: int, *, pretrained: bool = False, weights: str | None = None, dropout: float = 0.2,
                       **_) -> nn.Module:
    from torchvision.models import MobileNet_V3_Small_Weights
    from torchvision.models import mobilenet_v3_small as tv_mobilenet

    model = tv_mobilenet(num_classes=num_classes, dropout=dropout)
    if weights:
        load_backbone_weights(model, weights, head="classifier.3")
    elif pretrained:
        sd = torchvision_state_dict(MobileNet_V3_Small_Weights.IMAGENET1K_V1, "mobilenet_v3_small")
        load_into(model, sd, "classifier.3", "mobilenet_v3_small")
    return model
