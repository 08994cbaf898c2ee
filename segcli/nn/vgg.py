"""VGG16 (Simonyan & Zisserman, arXiv:1409.1556) as the FCN and DeepLab-LargeFOV backbone."""

from __future__ import annotations

import torch
from torchvision.models import VGG16_Weights
from torchvision.models.vgg import cfgs, make_layers

from segcli.errors import ConfigError
from segcli.nn.pretrained import load_pretrained

# Slices of torchvision's vgg16().features ending after pool3, pool4 and pool5.
POOL3, POOL4, POOL5 = slice(0, 17), slice(17, 24), slice(24, 31)


def vgg16_channels(width: float = 1.0) -> tuple[int, int, int]:
    """Channels after pool3, pool4 and pool5 at `width` (256, 512, 512 for the paper's net)."""
    return tuple(max(1, round(c * width)) for c in (256, 512, 512))


def vgg16_backbone(
    pretrained: bool = False, width: float = 1.0
) -> tuple[torch.nn.Sequential, dict]:
    """VGG16's conv layers (conv1_1 .. pool5, torchvision's layout and init) and its classifier's
    fc6/fc7 weights reshaped into 7x7 and 1x1 convolutions (FCN section 3.1,
    "convolutionalization"). `width` scales every conv's channels (1.0 is the paper's net;
    smaller is for quick CPU runs and has no ImageNet weights)."""
    layout = [c if c == "M" else max(1, round(c * width)) for c in cfgs["D"]]
    features = make_layers(layout)
    for m in features.modules():  # torchvision VGG's own initialisation
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    if not pretrained:
        return features, {}
    if width != 1.0:
        raise ConfigError("--pretrained needs the full-width VGG16 (--set width=1.0)")
    state = load_pretrained(VGG16_Weights.IMAGENET1K_V1, "ImageNet vgg16")
    features.load_state_dict(
        {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    )
    fc = {
        "weight6": state["classifier.0.weight"].view(4096, 512, 7, 7),
        "bias6": state["classifier.0.bias"],
        "weight7": state["classifier.3.weight"].view(4096, 4096, 1, 1),
        "bias7": state["classifier.3.bias"],
    }
    return features, fc
