"""DeepLab v3+: Chen, Zhu, Papandreou, Schroff & Adam, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", arXiv:1802.02611.

The DeepLab v3 encoder (section 3.1) followed by the decoder of section 3.1 / figure 2: the
encoder output is upsampled 4x and concatenated with the stride-4 backbone features reduced to
48 channels by a 1x1 convolution (section 4.1, table 1), refined by two 3x3 convolutions of 256
channels (table 2), turned into class scores and upsampled 4x.

Two models, as the paper has them. `deeplabv3plus`: the modified aligned Xception-65 (section
3.2, timm's `xception65`, segcli.nn.xception) at output stride 16 with atrous separable
convolutions in ASPP and decoder (section 3.1, "Depthwise separable convolution"; section 4.3,
table 5, the paper's headline model). `deeplabv3plus_r101`: ResNet-101 with plain 3x3
convolutions (section 4.2, table 3).

Deviations: as DeepLab v3 (see segcli.recipes.deeplab_v3); the 4x upsamplings go to the exact
size of the stride-4 features and of the input, so any H x W works. Xception-65 takes no
multi-grid (DeepLab's is ResNet-only).
"""

from __future__ import annotations

from segcli.recipe import Recipe
from segcli.recipes.deeplab_v3 import QUICK as V3_QUICK
from segcli.recipes.deeplab_v3 import TRAINING as V3_TRAINING

PAPER = (
    "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation "
    "(arXiv:1802.02611)"
)


# Section 4: "the same training protocol as in [DeepLab v3]" (poly 0.9 from 0.007, crop 513,
# batch 16 with batch norm fine-tuned, output stride 16, random scaling 0.5-2.0 and flipping).
TRAINING = dict(V3_TRAINING)
# Section 4.2 / table 3: ResNet-101 with the plain decoder.
R101 = {"backbone": "resnet101", "separable": False}
# Built-in shapes only (not the paper): v3's quick profile with a half-width ResNet-18 and a
# 128-channel ASPP and decoder at output stride 16 (the decoder recovers the detail that v3
# needs stride 8 for); see the README's quick profiles.
QUICK = {**V3_QUICK, "width": 0.5, "channels": 128, "output_stride": 16}

RECIPES = [
    Recipe(
        name="deeplabv3plus",
        task="semantic",
        paper=PAPER,
        model="segcli.recipes.nets.deeplab_v3plus:DeepLabV3Plus",
        defaults=TRAINING,
        quick=QUICK,
    ),
    Recipe(
        name="deeplabv3plus_r101",
        task="semantic",
        paper=PAPER,
        model="segcli.recipes.nets.deeplab_v3plus:DeepLabV3Plus",
        defaults=TRAINING,
        option_overrides=R101,
        quick=QUICK,
    ),
]
