"""The FCN networks (Long et al., arXiv:1411.4038; segcli.recipes.fcn declares the recipes and
cites their settings): VGG16 with convolutionised fc6/fc7 and the skip architecture (section
4.2)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from segcli.nn.init import bilinear_upsampler, pad_to_multiple
from segcli.nn.stages import pooled_stages
from segcli.nn.vgg import POOL3, POOL4, POOL5, vgg16_backbone, vgg16_channels

AT_ONCE_SCALES = (0.01, 0.0001)  # pool4, pool3: voc-fcn8s-atonce/net.py's scale_pool4/3


class FCN(nn.Module):
    """model(images [B,3,H,W]) -> logits [B,K,H,W]; stride 32, 16 or 8 for the finest skip."""

    # every layer with one channel per class (those a stride lacks are simply absent)
    class_specific_modules = (
        "score_fr", "score_pool4", "score_pool3", "upscore", "upscore2", "upscore16",
        "upscore_pool4", "upscore8",
    )  # fmt: skip

    def __init__(
        self,
        num_classes: int,
        stride: int = 8,
        pretrained: bool = False,
        width: float = 1.0,
        fc_channels: int = 4096,
        skip_scale: bool = False,
    ):
        super().__init__()
        if stride not in (32, 16, 8):
            raise ValueError("FCN stride must be 32, 16 or 8")
        self.stride = stride
        # voc-fcn8s-atonce's fixed Scale layers (lr_mult 0) on pool4 and pool3; plain floats,
        # so the state dict is the same with and without them
        self.pool4_scale, self.pool3_scale = AT_ONCE_SCALES if skip_scale else (1.0, 1.0)
        self.features, fc = vgg16_backbone(pretrained, width)
        c3, c4, c5 = vgg16_channels(width)
        self.fc6 = _fc(c5, fc_channels, 7)
        self.fc7 = _fc(fc_channels, fc_channels, 1)
        # conv1-5 and the convolutionalised fc6/fc7: the ImageNet classifier (section 3.1)
        self.backbone_stages = (*pooled_stages("features", self.features), ("fc6", "fc7"))
        if fc and fc_channels == 4096:
            _load_fc(self.fc6[0], fc["weight6"], fc["bias6"])
            _load_fc(self.fc7[0], fc["weight7"], fc["bias7"])
        self.score_fr = _zero_conv(fc_channels, num_classes)  # section 4.3: zero-initialised
        if stride == 32:
            self.upscore = bilinear_upsampler(num_classes, 32, trainable=False)
            return
        self.score_pool4 = _zero_conv(c4, num_classes)
        self.upscore2 = bilinear_upsampler(num_classes, 2, trainable=True)
        if stride == 16:
            self.upscore16 = bilinear_upsampler(num_classes, 16, trainable=False)
            return
        self.score_pool3 = _zero_conv(c3, num_classes)
        self.upscore_pool4 = bilinear_upsampler(num_classes, 2, trainable=True)
        self.upscore8 = bilinear_upsampler(num_classes, 8, trainable=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        x = pad_to_multiple(images, 32)
        pool3 = self.features[POOL3](x)
        pool4 = self.features[POOL4](pool3)
        score = self.score_fr(self.fc7(self.fc6(self.features[POOL5](pool4))))
        if self.stride == 32:
            return self.upscore(score)[..., :h, :w]
        score = self.upscore2(score) + self.score_pool4(pool4 * self.pool4_scale)
        if self.stride == 16:
            return self.upscore16(score)[..., :h, :w]
        score = self.upscore_pool4(score) + self.score_pool3(pool3 * self.pool3_scale)
        return self.upscore8(score)[..., :h, :w]


def _fc(cin: int, cout: int, kernel: int) -> nn.Sequential:
    # "same" padding keeps the fc6 map at pool5's size; dropout as in VGG's classifier
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True), nn.Dropout(0.5)
    )


def _zero_conv(cin: int, num_classes: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _load_fc(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> None:
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)


def build_fcn(
    num_classes: int,
    stride: int,
    pretrained: bool = False,
    width: float = 1.0,
    fc_channels: int = 4096,
    # Off in the network's own build, so checkpoints saved before the option existed (all
    # trained without it) load as they were trained; the recipe defaults turn it on.
    skip_scale: bool = False,
) -> FCN:
    return FCN(num_classes, stride, pretrained, width, fc_channels, skip_scale)


build_fcn32s = partial(build_fcn, stride=32, skip_scale=False)  # no skips to scale
build_fcn16s = partial(build_fcn, stride=16)
build_fcn8s = partial(build_fcn, stride=8)
