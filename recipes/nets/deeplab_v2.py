"""The DeepLab v2 network (Chen et al., arXiv:1606.00915; segcli.recipes.deeplab_v2 declares the
recipe): a dilated ResNet with ASPP scores (section 3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segcli.nn.aspp import ASPPScores
from segcli.nn.resnet import DilatedResNet, OnDilatedResNet


class DeepLabV2(OnDilatedResNet, nn.Module):
    """model(images [B,3,H,W]) -> logits [B,K,H,W]; scores at output stride 8."""

    head_modules = ("classifier",)  # section 4.1: 10x learning rate for the final classifier
    class_specific_modules = ("classifier",)

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet101",  # section 4.1, table 4: ResNet-101 with ASPP-L
        rates: Sequence[int] = (6, 12, 18, 24),
        width: float = 1.0,
        pretrained: bool = False,
        # Off in the network's own build: the recipe's pretrained start and defaults turn
        # them on.
        frozen_bn: bool = False,
        subsampled_loss: bool = False,
    ):
        super().__init__()
        self.subsampled_loss = subsampled_loss
        self.backbone = DilatedResNet(backbone, 8, None, pretrained, width, frozen_bn)
        self.classifier = ASPPScores(self.backbone.out_channels, num_classes, rates)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(self.backbone(images)["out"])
        if self.training and self.subsampled_loss:
            return scores  # [B,K,H/8,W/8] for subsampled_cross_entropy
        return F.interpolate(scores, images.shape[-2:], mode="bilinear", align_corners=False)
