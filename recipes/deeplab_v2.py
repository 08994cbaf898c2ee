"""DeepLab v2: Chen, Papandreou, Kokkinos, Murphy & Yuille, "DeepLab: Semantic Image
Segmentation with Deep Convolutional Nets, Atrous Convolution, and Fully Connected CRFs",
TPAMI 2017, arXiv:1606.00915.

ResNet-101 with atrous convolution in its last two blocks (output stride 8, section 3.1 and
section 4.1 "Deeper Networks") and ASPP-L (section 3.2, figure 4): four parallel 3x3 atrous
convolutions at rates 6, 12, 18, 24 straight to class scores, summed, then bilinearly
upsampled to the input size. Post-processing with the fully connected CRF (section 3.3):
`segcli eval --crf`, `segcli infer --crf`.

Training loss (section 4): on the stride-8 scores against the ground truth subsampled by 8, as
DeepLab v1 (`subsampled_loss`, on in the paper defaults, off in the quick profile). Batch norm
is frozen (`frozen_bn`: torchvision's FrozenBatchNorm2d, ImageNet statistics and affine fixed,
as the authors' released ResNet-101 prototxt has `use_global_stats: true` and Scale layers at
lr_mult 0) whenever the run starts from `--pretrained` or `--weights`; from scratch it trains,
since fixed statistics of a random network normalise nothing.

Deviations: the multi-scale-input fusion (MSC) and COCO pre-training of table 4 are left out;
torchvision's ResNet puts the stride of a bottleneck on its 3x3 convolution.
"""

from __future__ import annotations

from segcli.recipe import Recipe

PAPER = (
    "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, "
    "and Fully Connected CRFs (arXiv:1606.00915)"
)


# Section 4.1: as DeepLab v1 (learning rate 0.001, 0.01 for the final classifier, momentum 0.9,
# weight decay 0.0005) but with the "poly" policy (power 0.9), batch 10 and 20K iterations
# (table 1); ResNet-101 is trained with random rescaling 0.5-1.5 (section 4.1, "Deeper
# Networks and Multiscale Processing"). Biases at twice the learning rate and random 321x321
# crops with mirroring as in the authors' released prototxts. The lr is the paper's text; the
# authors' released ResNet-101 solver used 2.5e-4 (batch 1 x iter_size 10) instead. Section 4:
# the targets are "the ground truth labels (subsampled by 8)".
TRAINING = {
    "subsampled_loss": True,
    "optimizer": "sgd",
    "lr": 0.001,
    "head_lr_mult": 10.0,
    "bias_lr_mult": 2.0,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "poly",
    "poly_power": 0.9,
    "batch_size": 10,
    "iters": 20_000,
    "img_size": 321,
    "scale_range": (0.5, 1.5),
    "hflip": True,
}
# The released prototxt's batch norm: ImageNet statistics, no training (see the docstring).
PRETRAINED = {"frozen_bn": True}
# Built-in shapes only (not the paper): a half-width ResNet-18, no random rescaling, Adam
# without the 10x classifier rate, loss at full resolution; see the README's quick profiles.
QUICK = {
    "subsampled_loss": False,
    "backbone": "resnet18",
    "width": 0.5,
    "img_size": 64,
    "scale_range": (1.0, 1.0),
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "head_lr_mult": 1.0,
    "bias_lr_mult": 1.0,
    "weight_decay": 0.0,
    "iters": 2000,
    "val_every": 1000,
}

RECIPES = [
    Recipe(
        name="deeplabv2",
        task="semantic",
        paper=PAPER,
        model="segcli.recipes.nets.deeplab_v2:DeepLabV2",
        defaults=TRAINING,
        quick=QUICK,
        loss="segcli.nn.subsampled:subsampled_cross_entropy",
        pretrained_options=PRETRAINED,
    )
]
