"""ResNet-FPN backbones (Lin et al., "Feature Pyramid Networks for Object Detection",
arXiv:1612.03144) with the P3-P7 pyramid of RetinaNet and YOLACT, built on torchvision's
FeaturePyramidNetwork."""

from __future__ import annotations

from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from segcli.nn.resnet import build_resnet


class P6P7FromP5(LastLevelP6P7):
    """P6 = conv3x3/2(P5), P7 = conv3x3/2(P6), with no ReLU between them (YOLACT section 4 and
    its reference code; RetinaNet's LastLevelP6P7 puts a ReLU before P7)."""

    def __init__(self, channels: int):
        super().__init__(channels, channels)

    def forward(self, p, c, names):
        p6 = self.p6(p[-1])
        p.extend([p6, self.p7(p6)])
        names.extend(["p6", "p7"])
        return p, names


def resnet_fpn_p3p7(
    name: str = "resnet101", channels: int = 256, pretrained: bool = False
) -> BackboneWithFPN:
    """images [B,3,H,W] -> OrderedDict p3..p7 of [B, channels, H/2^l, W/2^l] (l = 3..7).

    P3-P5 come from ResNet's C3-C5 (layer2-4) through the FPN's lateral 1x1 and output 3x3
    convolutions; P6, P7 from P5 by stride-2 3x3 convolutions. Batch norm stays trainable
    (YOLACT section 6.4: batch 8 is enough to leave it unfrozen).
    """
    net = build_resnet(name, pretrained)
    c5 = net.fc.in_features  # 2048 (bottleneck blocks) or 512 (basic blocks)
    return BackboneWithFPN(
        net,
        return_layers={"layer2": "c3", "layer3": "c4", "layer4": "c5"},
        in_channels_list=[c5 // 4, c5 // 2, c5],
        out_channels=channels,
        extra_blocks=P6P7FromP5(channels),
    )


def conv_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    """[B,cin,H,W] -> [B,cout,H,W]: a "same"-padded convolution with bias, then ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True))
