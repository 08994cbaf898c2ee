"""The DeepLab v3 network (Chen et al., arXiv:1706.05587; segcli.recipes.deeplab_v3 declares the
recipe): a dilated ResNet (or the aligned Xception) with multi-grid and ASPP with image pooling
(section 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segcli.errors import ConfigError
from segcli.nn.aspp import ASPP
from segcli.nn.resnet import RESNETS, DilatedResNet, OnDilatedResNet
from segcli.nn.xception import TIMM_NAME as XCEPTION
from segcli.nn.xception import AlignedXception


def build_encoder(
    backbone: str,
    output_stride: int,
    multi_grid: Sequence[int],
    aspp_rates: Sequence[int],
    pretrained: bool,
    width: float = 1.0,
    channels: int = 256,
    separable: bool = False,
) -> tuple[nn.Module, ASPP]:
    """The DeepLab v3 encoder: a dilated ResNet (or v3+'s aligned Xception-65, which has no
    multi-grid) and ASPP, whose rates are given at output stride 16 and doubled at 8 (section
    3.3)."""
    if backbone == XCEPTION:
        net = AlignedXception(output_stride, pretrained, width)
    elif backbone in RESNETS:
        net = DilatedResNet(backbone, output_stride, multi_grid, pretrained, width)
    else:
        known = ", ".join([*RESNETS, XCEPTION])
        raise ConfigError(f"setting 'backbone': expected one of {known}, got {backbone!r}")
    rates = [r * 16 // output_stride for r in aspp_rates]
    return net, ASPP(net.out_channels, rates, channels, separable)


class DeepLabV3(OnDilatedResNet, nn.Module):
    """model(images [B,3,H,W]) -> logits [B,K,H,W]."""

    class_specific_modules = ("classifier",)

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet101",  # section 4.3
        output_stride: int = 16,  # section 4.1: training at output stride 16
        multi_grid: Sequence[int] = (1, 2, 4),  # section 3.2
        aspp_rates: Sequence[int] = (6, 12, 18),  # section 3.3: the rates at output stride 16
        width: float = 1.0,
        channels: int = 256,  # section 3.3: 256 filters
        pretrained: bool = False,
    ):
        super().__init__()
        self.backbone, self.aspp = build_encoder(
            backbone, output_stride, multi_grid, aspp_rates, pretrained, width, channels
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)["out"]
        logits = self.classifier(self.aspp(features))
        return F.interpolate(logits, images.shape[-2:], mode="bilinear", align_corners=False)
