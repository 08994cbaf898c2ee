"""Atrous Spatial Pyramid Pooling: DeepLab v2's ASPP-L and DeepLab v3's ASPP (v3+: separable)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segcli.nn.conv import conv3x3_bn_relu, conv_bn_relu


class ASPPScores(nn.Module):
    """DeepLab v2 ASPP (section 3.2, figure 4) for ResNet: parallel 3x3 atrous convolutions at
    `rates` (ASPP-L: 6, 12, 18, 24) straight to class scores, fused by summation.

    [B,C,h,w] -> [B,K,h,w]
    """

    def __init__(self, cin: int, num_classes: int, rates: Sequence[int] = (6, 12, 18, 24)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates
        )
        for conv in self.branches:  # the released prototxt: gaussian(std 0.01), zero bias
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class ImagePooling(nn.Module):
    """DeepLab v3 section 3.3 image-level features: global average pooling, 1x1 conv + BN +
    ReLU, bilinear upsampling back to the map size. [B,C,h,w] -> [B,out,h,w]"""

    # In training, the BN sees [B,out,1,1]: one value per channel when B = 1, which it cannot
    # normalise. The train pre-flight reads these two attributes from every module.
    min_batch_size = 2
    min_batch_reason = (
        "the image-pooling branch's batch norm (DeepLab v3 section 3.3) normalises over the batch"
    )

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pool(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """DeepLab v3 ASPP (section 3.3): a 1x1 convolution, 3x3 atrous convolutions at `rates`
    ((6, 12, 18) at output stride 16, doubled at 8) and image pooling, all with `channels`
    filters and BN, concatenated and fused by a 1x1 convolution + BN.
    `separable`: DeepLab v3+ makes the 3x3 branches atrous separable convolutions (section 3.1;
    used in ASPP with the Xception backbone, section 4.3 and table 5).

    [B,C,h,w] -> [B,channels,h,w]
    """

    def __init__(
        self,
        cin: int,
        rates: Sequence[int] = (6, 12, 18),
        channels: int = 256,
        separable: bool = False,
    ):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, channels, 1)]
            + [conv3x3_bn_relu(cin, channels, r, separable) for r in rates]
            + [ImagePooling(cin, channels)]
        )
        self.project = conv_bn_relu(channels * len(self.branches), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
