"""Mask R-CNN: He, Gkioxari, Dollár & Girshick, "Mask R-CNN", ICCV 2017, arXiv:1703.06870.

torchvision's MaskRCNN with the paper's FPN variant (section 3.1, "Network Architecture"): a
ResNet-FPN backbone, an RPN over five anchor scales and three aspect ratios, RoIAlign (section
3), the two-fc box head and the four-conv mask head with a per-class 28x28 sigmoid output whose
binary cross-entropy only sees the ground-truth class's mask (section 3, L_mask).

Deviations: none in the model with `--pretrained` or `--weights`. The paper starts from
ImageNet weights with frozen batch norm (and the stem and res2 fixed), as does any run here
that starts from ImageNet (`--pretrained`) or detection weights (`--weights`, e.g.
`torchvision:maskrcnn_resnet50_fpn`); without either, the backbone trains from scratch with
ordinary, trainable batch norm in every layer, as frozen statistics of random weights would be
meaningless. The linear
scaling of the learning rate to the batch actually used (`lr_batch_size`) is the rule the
paper's schedule follows implicitly (16 images on 8 GPUs).
"""

from __future__ import annotations

from segcli.recipe import Recipe

PAPER = "Mask R-CNN (arXiv:1703.06870)"


def rcnn_resize(size: int) -> dict[str, int]:
    """--img-size S: the short side S, the long side capped at the paper's 1333/800 ratio."""
    return {"min_size": size, "max_size": round(size * 1333 / 800)}


# A run that starts from ImageNet or COCO weights keeps their batch norm statistics, as
# torchvision's own pretrained Mask R-CNN does (batches of 1-2 images would spoil them).
PRETRAINED = {"frozen_bn": True}
PAPER_DEFAULTS = {
    # "8 GPUs (so effective minibatch size is 16) ... a learning rate of 0.02 which is
    # decreased by 10 at the 120k iteration ... weight decay of 0.0001 and momentum of 0.9";
    # each GPU holds 2 images, so one process takes 2 and lr scales linearly with the batch.
    "optimizer": "sgd",
    "lr": 0.02,
    "lr_batch_size": 16,
    "batch_size": 2,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "iters": 160_000,
    "img_size": 800,  # the short side, as min_size (rcnn_resize)
    "schedule": "step",
    "lr_steps": (120_000,),
    "lr_gamma": 0.1,
    # Not in the paper: the reference Detectron config warms up linearly over 500 iterations
    # from 1/3 of the lr (Goyal et al.), and flips training images horizontally.
    "warmup_iters": 500,
    "warmup_factor": 1 / 3,
    "hflip": True,
    "scale_range": (1.0, 1.0),
    "val_every": 20_000,
}
# Built-in shapes only (not the paper): ResNet-18-FPN (64 channels) from scratch on 96 px
# images, smaller anchors, heads and RoI samples, AdamW, so a 2-core CPU reaches mask AP > 0.5
# in minutes.
QUICK = {
    "backbone": "resnet18",
    "fpn_channels": 64,
    "img_size": 96,
    "anchor_sizes": (16, 32, 64, 128, 256),
    "rpn_proposals_train": 200,
    "rpn_proposals_test": 100,
    "box_batch_size": 32,
    "box_head_channels": 256,
    "mask_head_channels": 64,
    "batch_size": 4,
    "optimizer": "adamw",
    "lr": 1e-3,
    "lr_batch_size": 0,
    "weight_decay": 1e-4,
    "schedule": "step",
    "iters": 1200,
    "lr_steps": (900,),
    "warmup_iters": 100,
    "warmup_factor": 0.01,
    "val_every": 400,
    "workers": 1,
}

RECIPES = [
    Recipe(
        name="mask_rcnn",
        task="instance",
        paper=PAPER,
        model="segcli.recipes.nets.mask_rcnn:build_mask_rcnn",
        defaults=PAPER_DEFAULTS,
        quick=QUICK,
        resize_options=rcnn_resize,
        pretrained_options=PRETRAINED,
    ),
]
