"""The U-Net network (Ronneberger et al., arXiv:1505.04597; segcli.recipes.unet declares the
recipe): the contracting and expanding paths of section 2 and the border-weighted loss of
section 3."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segcli.nn.init import he_normal_, pad_to_multiple

BORDER_W0, BORDER_SIGMA = 10.0, 5.0  # section 3: w0 = 10, sigma ~ 5 pixels


DROPOUT_LEVEL = 3  # the released prototxt's dropout_d3c (512 channels) and dropout_d4c (1024)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """model(images [B,3,H,W]) -> logits [B,K,H,W]; `base` channels at the top level (64)."""

    class_specific_modules = ("classifier",)

    def __init__(self, num_classes: int, base: int = 64, pretrained: bool = False):
        super().__init__()
        if pretrained:
            from segcli.errors import ConfigError

            raise ConfigError("unet has no pretrained backbone (the paper trains from scratch)")
        widths = [base * 2**i for i in range(5)]  # 64, 128, 256, 512, 1024
        self.down = nn.ModuleList(
            [_double_conv(3, widths[0])]
            + [_double_conv(widths[i - 1], widths[i]) for i in range(1, 5)]
        )
        # section 3.1: drop-out layers at the end of the contracting path (levels 3 and 4)
        self.dropout = nn.Dropout(0.5)
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(4, 0, -1)]
        )
        self.decode = nn.ModuleList(
            [_double_conv(2 * widths[i - 1], widths[i - 1]) for i in range(4, 0, -1)]
        )
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        he_normal_(self)
        self.backbone_stages = tuple((f"down.{i}",) for i in range(5))  # the contracting path

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        x = pad_to_multiple(images, 16)
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            if level >= DROPOUT_LEVEL:
                x = self.dropout(x)
            skips.append(x)
        x = skips.pop()
        for up, decode in zip(self.up, self.decode):
            x = decode(torch.cat([skips.pop(), up(x)], dim=1))
        return self.classifier(x)[..., :h, :w]


def border_weight_map(
    target: np.ndarray, ignore_index: int, w0: float = BORDER_W0, sigma: float = BORDER_SIGMA
) -> np.ndarray:
    """Equation 2: w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)).

    w_c balances the class frequencies of `target` itself (inverse frequency, mean 1 over its
    labelled pixels): the paper precomputes the map "for each ground truth segmentation", and
    at its defaults the crop is the whole 512 x 512 training image. d1, d2 are the distances to
    the nearest and second-nearest object, objects being the connected components of the
    non-background classes. Float32 [H, W], 0 on ignored pixels.
    """
    labelled = target != ignore_index
    classes, counts = np.unique(target[labelled], return_counts=True)
    weights = np.zeros(target.shape, np.float32)
    for cls, count in zip(classes, counts):
        weights[target == cls] = labelled.sum() / (len(classes) * count)
    foreground = (labelled & (target > 0)).astype(np.uint8)
    count, components = cv2.connectedComponents(foreground, connectivity=8)
    if count > 2:  # at least two objects: a border between them can exist
        distances = np.stack(
            [
                cv2.distanceTransform((components != i).astype(np.uint8), cv2.DIST_L2, 3)
                for i in range(1, count)
            ]
        )
        nearest = np.partition(distances, 1, axis=0)[:2]
        weights += (w0 * np.exp(-(nearest.sum(0) ** 2) / (2 * sigma**2)) * (target == 0)).astype(
            np.float32
        )
    weights[~labelled] = 0
    return weights


def border_weight_target(mask: torch.Tensor, ignore_index: int) -> dict[str, torch.Tensor]:
    """The training target of one sample, prepared in the DataLoader workers: the class ids
    `mask` (long [H, W]) and its border weight map `weight` (float32 [H, W], equation 2)."""
    return {"mask": mask, "weight": torch.from_numpy(border_weight_map(mask.numpy(), ignore_index))}


def weighted_cross_entropy(
    outputs: torch.Tensor, target: dict[str, torch.Tensor], ignore_index: int
) -> dict[str, torch.Tensor]:
    """Section 3: pixel-wise softmax cross-entropy weighted by the border weight map
    (`target`: border_weight_target's mask and weight, batched [B, H, W], on the device)."""
    weight = target["weight"]
    per_pixel = F.cross_entropy(
        outputs.float(), target["mask"], ignore_index=ignore_index, reduction="none"
    )
    return {"loss_ce": (per_pixel * weight).sum() / weight.sum().clamp(min=1e-6)}


def build_unet(num_classes: int, pretrained: bool = False, base: int = 64) -> UNet:
    return UNet(num_classes, base, pretrained)
