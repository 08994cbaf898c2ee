"""U-Net: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, arXiv:1505.04597.

The paper's 23-convolution network (section 2): four 2x2 max-pool steps with two 3x3
convolutions each (64 -> 1024 channels), four 2x2 up-convolutions halving the channels, skip
concatenation, and a final 1x1 convolution to the classes; He-normal initialisation (section 3)
and the border-weighted cross-entropy of section 3 (equation 2). Drop-out (0.5) at the end of
the contracting path (section 3.1), where the authors' released network definition puts it: on
the 512- and the 1024-channel level, the former before it feeds both the pooling and the skip.

Deviation: the paper uses unpadded ("valid") convolutions and an overlap-tile strategy for
large images. Here the 3x3 convolutions are zero-padded and the input is padded to a multiple
of 16, so the output keeps the input size and no tiling is needed.
"""

from __future__ import annotations

from segcli.recipe import Recipe

PAPER = "U-Net: Convolutional Networks for Biomedical Image Segmentation (arXiv:1505.04597)"


# Section 3: SGD with momentum 0.99 and a single large tile per batch. The paper gives no
# learning rate; 1e-3 keeps momentum 0.99 stable with the per-pixel mean loss. Section 3.1:
# elastic deformation (3x3 grid, Gaussian 10 px, bicubic: segcli.data.elastic); shifts come
# from the random crop of larger images, plus horizontal flips. The section's rotations and
# gray-value variations are not applied.
PAPER_DEFAULTS = {
    "optimizer": "sgd",
    "lr": 1e-3,
    "momentum": 0.99,
    "weight_decay": 0.0,
    "batch_size": 1,
    "schedule": "constant",
    "img_size": 512,
    "scale_range": (1.0, 1.0),
    "hflip": True,
    "elastic": True,
    "iters": 20_000,
}

# Built-in shapes only (not the paper): 16..256 channels, Adam with poly decay, batch 8 of
# 64 px images, so a 2-core CPU reaches mIoU > 0.8 in about 5 minutes.
QUICK = {
    "base": 16,
    "img_size": 64,
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "schedule": "poly",
    "iters": 2000,
    "val_every": 1000,
}

RECIPES = [
    Recipe(
        name="unet",
        task="semantic",
        paper=PAPER,
        model="segcli.recipes.nets.unet:build_unet",
        defaults=PAPER_DEFAULTS,
        quick=QUICK,
        loss="segcli.recipes.nets.unet:weighted_cross_entropy",
        prepare_target="segcli.recipes.nets.unet:border_weight_target",
    ),
]
