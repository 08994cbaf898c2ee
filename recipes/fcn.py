"""FCN-32s, FCN-16s, FCN-8s: Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015, arXiv:1411.4038.

VGG16 with fc6/fc7 as convolutions, class scores from fc7 (and from pool4, pool3 for the skip
nets), learned bilinear-initialised deconvolutions and a fixed bilinear last one (section 4.2).

Two ways to train the skip nets. Staged (section 4.2): FCN-16s starts from FCN-32s's
checkpoint (`--weights`), FCN-8s from FCN-16s's, each "with the learning rate decreased by a
factor of 100". At once, from ImageNet (the authors' reference net voc-fcn8s-atonce, in
github.com/shelhamer/fcn.berkeleyvision.org): pool4 and pool3 are scaled by fixed 0.01 and
0.0001 before their score layers (`skip_scale`), so the skips start small next to the fc7
scores. The recipe's defaults train at once; `--weights` switches to the staged settings.

Deviation: the reference Caffe nets pad conv1_1 by 100 px and crop the upsampled scores so the
output covers any input. Here the input is zero-padded (mean colour after normalisation) at the
bottom/right to a multiple of 32 and the scores are cropped back to H x W, which gives the same
alignment for at most 31 extra pixels instead of 200 per side.
"""

from __future__ import annotations

from segcli.recipe import Recipe

PAPER = "Fully Convolutional Networks for Semantic Segmentation (arXiv:1411.4038)"


# Section 4.3 (Optimization): SGD with momentum 0.9, minibatch 20 images, fixed learning rate
# 1e-4 for FCN-VGG16, weight decay 5e-4, doubled learning rate for biases; whole-image training
# (section 4.3, Patch Sampling) and no augmentation (section 4.3, Augmentation: mirroring and
# jittering gave no noticeable improvement). The loss is averaged over labelled pixels rather
# than summed (section 3's spatial sum), so the learning rate does not depend on image size.
# Images up to 500 px: crop 512.
# Length: the paper gives days, not iterations. The reference solvers train each stage for
# 100,000 iterations of one image (voc-fcn32s, voc-fcn16s: 25 x 4000 steps), and the at-once
# FCN-8s for 300,000 (75 x 4000), the images of its three stages. At the paper's 20 images per
# step, 100,000 images are 5,000 iterations: 11.8 epochs of the 8,498 SBD training images the
# reference trains on (section 4.3, More Training Data), 90 of VOC2011's 1,112.
IMAGES_PER_STAGE = 100_000
PAPER_DEFAULTS = {
    "optimizer": "sgd",
    "lr": 1e-4,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "bias_lr_mult": 2.0,
    "batch_size": 20,
    "schedule": "constant",
    "iters": IMAGES_PER_STAGE // 20,
    "img_size": 512,
    "scale_range": (1.0, 1.0),
    "hflip": False,
}


def _at_once(stages: int) -> dict:
    """FCN-16s (2 stages) or FCN-8s (3) trained in one go from ImageNet: the skip scaling and
    the images of every stage it replaces."""
    return {**PAPER_DEFAULTS, "skip_scale": True, "iters": stages * IMAGES_PER_STAGE // 20}


# Section 4.2: a finer net "initialized with the parameters of the last, coarser net" and "the
# learning rate is decreased by a factor of 100"; one stage's images; no skip scaling (the
# staged reference nets voc-fcn16s/voc-fcn8s have none).
LATER_STAGE = {
    "lr": PAPER_DEFAULTS["lr"] / 100,
    "iters": IMAGES_PER_STAGE // 20,
    "skip_scale": False,
}
# Built-in shapes only (not the paper): VGG16 at quarter width with 256-channel fc6/fc7, Adam
# with poly decay on 64 px images, so a 2-core CPU reaches mIoU > 0.8 in about 5 minutes.
# No skip scaling: Adam's steps do not grow with the gradient, so 0.01 x pool4 would keep the
# skips near zero for the whole short run.
QUICK = {
    "width": 0.25,
    "fc_channels": 256,
    "img_size": 64,
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "schedule": "poly",
    "iters": 3000,
    "val_every": 1000,
    "skip_scale": False,
}
QUICK_32S = {k: v for k, v in QUICK.items() if k != "skip_scale"}

RECIPES = [
    Recipe(
        name="fcn32s",
        task="semantic",
        paper=PAPER,
        model="segcli.recipes.nets.fcn:build_fcn32s",
        defaults=PAPER_DEFAULTS,
        quick=QUICK_32S,
    ),
    *(
        Recipe(
            name=f"fcn{stride}s",
            task="semantic",
            paper=PAPER,
            model=f"segcli.recipes.nets.fcn:build_fcn{stride}s",
            defaults=_at_once(stages),
            quick=QUICK,
            from_weights=LATER_STAGE,
        )
        for stride, stages in ((16, 2), (8, 3))
    ),
]
