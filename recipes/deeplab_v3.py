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

from segcli.recipe import Recipe

PAPER = "Rethinking Atrous Convolution for Semantic Image Segmentation (arXiv:1706.05587)"


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
        model="segcli.recipes.nets.deeplab_v3:DeepLabV3",
        defaults=TRAINING,
        quick=QUICK,
    )
]
