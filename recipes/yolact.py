"""YOLACT: Bolya, Zhou, Xiao & Lee, "YOLACT: Real-time Instance Segmentation", ICCV 2019,
arXiv:1904.02689.

A one-stage detector (ResNet-FPN P3-P7, one prediction head shared by the levels, three anchors
per cell) that also predicts k mask coefficients per anchor; a protonet on P3 predicts k
prototype masks for the whole image, and an instance's mask is sigmoid(P c) cropped by its box
(section 3). Detections are pruned with Fast NMS (section 5, segcli.ops.fast_nms). Sections
follow arXiv:1904.02689v2: 3 the model, 4 the backbone detector, 5 Fast NMS and the semantic
segmentation loss, 6.4 the implementation details.

Interface: torchvision's detection convention. Images are float [3, H, W] in [0, 1] of any
size; like torchvision's GeneralizedRCNNTransform the model resizes them (to size x size,
ignoring the aspect ratio, as the paper does) and normalises them with the ImageNet mean and
std; boxes and masks are returned at the input size. `anchor_scales` are pixels at `size`, as in
the reference code (its YOLACT-400/700 configs scale them with the size).

Deviations: torchvision's FPN (nearest-neighbour top-down, no ReLU after the output
convolutions) instead of the reference code's bilinear one with ReLU; the paper's 1:2 / 2:1
anchors, where the reference config's `use_square_anchors` made all anchors square; masks are
cropped by the predicted box at the output resolution (after upsampling), so nothing outside a
box survives the interpolation; crowd annotations are not treated specially in training; the
SSD random crop enforces its IoU constraint (segcli.data.ssd_augment), which the reference's
check leaves a no-op. Matching is torchvision's `Matcher` with
`allow_low_quality_matches`: every anchor whose IoU with some ground truth equals that ground
truth's best IoU (ties included) becomes positive, for the ground truth it overlaps most; the
reference code's `match` instead forces each ground truth's single best anchor to that ground
truth (so two objects sharing a best anchor cannot take it from each other, and ties give one
anchor, not several).
"""

from __future__ import annotations

from segcli.recipe import Recipe

PAPER = "YOLACT: Real-time Instance Segmentation (arXiv:1904.02689)"
# Section 4: anchors of aspect ratios [1, 1/2, 2], scales [24, 48, 96, 192, 384] px on P3..P7
# of a 550 px image.
ASPECT_RATIOS, SCALES, PAPER_SIZE = (1.0, 0.5, 2.0), (24, 48, 96, 192, 384), 550


# Section 6.4 (implementation details): SGD, lr 1e-3, momentum 0.9, weight decay 5e-4, batch 8,
# 800k iterations with lr / 10 at 280k, 600k, 700k and 750k, linear warm-up (the reference
# config: 500 iterations from lr / 10); 550 x 550 images; SSD's augmentation (section 6.4 and
# the reference's SSDAugmentation: photometric distortion, expand, IoU-constrained random crop,
# mirror). The model resizes, so `scale_range` stays off.
PAPER_DEFAULTS = {
    "optimizer": "sgd",
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 8,
    "iters": 800_000,
    "schedule": "step",
    "lr_steps": (280_000, 600_000, 700_000, 750_000),
    "lr_gamma": 0.1,
    "warmup_iters": 500,
    "warmup_factor": 0.1,
    "img_size": PAPER_SIZE,
    "hflip": True,
    "augment": "ssd",
    "scale_range": (1.0, 1.0),
}
# Built-in shapes only (not the paper): ResNet-18-FPN with 64 channels from scratch at 128 px
# (the paper's anchor scales in pixels fit the shapes, which are large relative to the image),
# Adam with poly decay, so a 2-core CPU reaches mask AP > 0.4 within the 15-minute budget. The
# flip alone: it trains better here than SSD's expand and crop, which are made for the paper's
# 800k iterations (`--set augment=ssd` gives them; DESIGN.md, instance augmentation).
QUICK = {
    "backbone": "resnet18",
    "img_size": 128,
    "anchor_scales": SCALES,
    "fpn_channels": 64,
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "poly",
    "warmup_iters": 100,
    "warmup_factor": 0.01,
    "iters": 1000,
    "val_every": 500,
    "workers": 1,
    "augment": "flip",
}


# Section 5 (table 2a): Fast NMS against the standard NMS it replaces, for `benchmark --compare`.
VARIANTS = {
    "fast": {
        "options": {"nms": "fast"},
        "note": "Fast NMS (section 5): per class, the top 200 candidates, each suppressed by any "
        "higher-scoring one (IoU > 0.5), kept or not",
    },
    "standard": {
        "options": {"nms": "standard"},
        "note": "torchvision's batched_nms over every candidate, without Fast NMS's per-class "
        "top_k of 200 (as the reference code's traditional_nms)",
    },
}


def square_resize(size: int) -> dict:
    """--img-size S: the network's S x S input (section 6: 550 x 550), the anchors scaled with
    it as the reference code's YOLACT-400 and -700 configs do."""
    return {"size": size, "anchor_scales": tuple(round(s * size / PAPER_SIZE) for s in SCALES)}


RECIPES = [
    Recipe(
        name="yolact",
        task="instance",
        paper=PAPER,
        model="segcli.recipes.nets.yolact:build_yolact",
        defaults=PAPER_DEFAULTS,
        quick=QUICK,
        resize_options=square_resize,
        variants=VARIANTS,
    ),
    Recipe(
        name="yolact_r50",
        task="instance",
        paper=PAPER,
        model="segcli.recipes.nets.yolact:build_yolact",
        defaults=PAPER_DEFAULTS,
        option_overrides={"backbone": "resnet50"},
        quick=QUICK,
        resize_options=square_resize,
        variants=VARIANTS,
    ),
]
