"""DeepLab v3: Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic
Image Segmentation", arXiv:1706.05587.

A dilated ResNet-101 (output stride 16, or 8 with every atrous rate doubled, section 3.1) whose
block4 uses multi-grid unit rates (1, 2, 4) (section 3.2), the improved ASPP with image-level
features and batch norm (section 3.3), a final 1x1 convolution to the classes, and the logits
bilinearly upsampled to the input size, where the loss is computed (section 4.1, "Upsampling
logits").

Deviations: batch norm uses PyTorch's default momentum (0.1) rather than the paper's decay
0.9997, which assumes 30K iterations from ImageNet statistics; the paper's second stage
(frozen BN, output stride 8, trainval) is not automated: evaluate a checkpoint at output
stride 8 with `segcli eval --set output_stride=8`.
"""

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
from segcli.recipe import Recipe

PAPER = "Rethinking Atrous Convolution for Semantic Image Segmentation (arXiv:1706.05587)"


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
        backbone: str = "resnet101",
        output_stride: int = 16,
        multi_grid: Sequence[int] = (1, 2, 4),
        aspp_rates: Sequence[int] = (6, 12, 18),
        width: float = 1.0,
        channels: int = 256,
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


# Section 4.1 (Training protocol): "poly" learning rate (power 0.9) from 0.007, crop 513x513,
# batch 16 so batch norm can be fine-tuned, output stride 16, 30K iterations on train_aug,
# random scaling 0.5-2.0 and left-right flipping. SGD with momentum 0.9 and weight decay 1e-4
# are not stated in the paper: they are the authors' reference implementation's values.
TRAINING = {
    "optimizer": "sgd",
    "lr": 0.007,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "poly",
    "poly_power": 0.9,
    "batch_size": 16,
    "iters": 30_000,
    "img_size": 513,
    "scale_range": (0.5, 2.0),
    "hflip": True,
}
# Section 3.2 (multi-grid), 3.3 (ASPP rates at output stride 16, 256 filters), 4.1 (training
# at output stride 16), 4.3 (ResNet-101).
OPTIONS = {
    "backbone": "resnet101",
    "output_stride": 16,
    "multi_grid": (1, 2, 4),
    "aspp_rates": (6, 12, 18),
    "width": 1.0,
    "channels": 256,
}
# Built-in shapes only (not the paper): a quarter-width ResNet-18 at output stride 8 (at 16, a
# 64 px image leaves 4x4 logits), no random rescaling, Adam; see the README's quick profiles.
QUICK = {
    "backbone": "resnet18",
    "multi_grid": (1, 2),
    "width": 0.25,
    "channels": 64,
    "output_stride": 8,
    "img_size": 64,
    "scale_range": (1.0, 1.0),
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "iters": 2000,
    "val_every": 1000,
}

RECIPES = [
    Recipe(
        name="deeplabv3",
        task="semantic",
        paper=PAPER,
        build_model=DeepLabV3,
        defaults=TRAINING,
        options=OPTIONS,
        quick=QUICK,
    )
]
