"""Convolution + batch norm + ReLU blocks, plain or depthwise-separable (DeepLab v3/v3+)."""

from __future__ import annotations

from torch import nn
from torchvision.ops import Conv2dNormActivation


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Module:
    """[B,cin,H,W] -> [B,cout,H,W]: convolution (no bias, "same" padding), BN, ReLU."""
    return Conv2dNormActivation(cin, cout, kernel, dilation=dilation)


def separable_conv_bn_relu(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """[B,cin,H,W] -> [B,cout,H,W]: a 3x3 depthwise (atrous) convolution, then a 1x1 pointwise
    one (DeepLab v3+ section 3.1, atrous separable convolution), each followed by BN and ReLU as
    v3+ section 3.2 does after every depthwise convolution (the MobileNet design)."""
    return nn.Sequential(
        Conv2dNormActivation(cin, cin, 3, dilation=dilation, groups=cin),
        Conv2dNormActivation(cin, cout, 1),
    )


def conv3x3_bn_relu(cin: int, cout: int, dilation: int = 1, separable: bool = False) -> nn.Module:
    """A 3x3 (atrous) block, depthwise-separable or not."""
    if separable:
        return separable_conv_bn_relu(cin, cout, dilation)
    return conv_bn_relu(cin, cout, 3, dilation)
