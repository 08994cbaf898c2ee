"""The DeepLab v3+ network (Chen et al., arXiv:1802.02611; segcli.recipes.deeplab_v3plus declares
the recipe): the v3 encoder with the decoder of section 3.1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segcli.nn.conv import conv3x3_bn_relu, conv_bn_relu
from segcli.nn.resnet import OnDilatedResNet
from segcli.recipes.nets.deeplab_v3 import build_encoder


class Decoder(nn.Module):
    """Section 3.1: (encoder [B,C,h,w], low [B,C_low,H/4,W/4]) -> features [B,C,H/4,W/4]."""

    def __init__(self, low_channels: int, reduced: int, channels: int, separable: bool):
        super().__init__()
        self.reduce = conv_bn_relu(low_channels, reduced, 1)
        self.refine = nn.Sequential(
            conv3x3_bn_relu(channels + reduced, channels, separable=separable),
            conv3x3_bn_relu(channels, channels, separable=separable),
        )

    def forward(self, encoder: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(encoder, low.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([up, self.reduce(low)], dim=1))


class DeepLabV3Plus(OnDilatedResNet, nn.Module):
    """model(images [B,3,H,W]) -> logits [B,K,H,W]."""

    class_specific_modules = ("classifier",)

    def __init__(
        self,
        num_classes: int,
        # The v3 encoder's (section 3.1) on Xception-65 (section 3.2) with separable ASPP and
        # decoder (section 4.3, table 5); 48 low-level channels (section 4.1, table 1).
        backbone: str = "xception65",
        output_stride: int = 16,
        multi_grid: Sequence[int] = (1, 2, 4),
        aspp_rates: Sequence[int] = (6, 12, 18),
        width: float = 1.0,
        channels: int = 256,
        separable: bool = True,
        low_level_channels: int = 48,
        pretrained: bool = False,
    ):
        super().__init__()
        self.backbone, self.aspp = build_encoder(
            backbone, output_stride, multi_grid, aspp_rates, pretrained, width, channels, separable
        )
        self.decoder = Decoder(self.backbone.low_channels, low_level_channels, channels, separable)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        decoded = self.decoder(self.aspp(features["out"]), features["low"])
        logits = self.classifier(decoded)
        return F.interpolate(logits, images.shape[-2:], mode="bilinear", align_corners=False)
