"""DeepLab v1 (DeepLab-LargeFOV): Chen, Papandreou, Kokkinos, Murphy & Yuille, "Semantic Image
Segmentation with Deep Convolutional Nets and Fully Connected CRFs", ICLR 2015, arXiv:1412.7062.

VGG16 made dense with the hole algorithm (section 3.1): pool4 and pool5 keep the resolution
(3x3 max-pooling, stride 1, pad 1, as in the authors' Caffe net, whose other pools are 3x3 /
stride 2 / pad 1 too), conv5 becomes atrous with rate 2, fc6 a 3x3 convolution with rate 12 and
1024 channels and fc7 a 1x1 convolution with 1024 channels (DeepLab-LargeFOV, section 3.2 and
section 5 "Field of View", table 2), so the class scores come at output stride 8 and are
bilinearly upsampled to the input size (section 3.1). Between pool5 and fc6 sits the Caffe
net's `pool5a`, a 3x3 average pooling with stride 1 and pad 1 (no parameters). With
`--pretrained`, fc6/fc7 start from VGG16's ImageNet fc layers decimated to 3x3 and 1024
channels, as section 3.2 does.
Post-processing with the fully connected CRF (section 4.2): `segcli eval --crf`,
`segcli infer --crf`.

Training loss (section 3.1, "Loss function"): against the ground truth subsampled by 8, on the
stride-8 scores, which the model returns in training mode (`subsampled_loss`, on in the paper
defaults; the quick profile trains on upsampled scores at full resolution). In eval mode the
scores are always upsampled to the input size.
"""

from __future__ import annotations

from segcli.recipe import Recipe

PAPER = (
    "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs "
    "(arXiv:1412.7062)"
)


# Section 5 (Training): SGD with mini-batches of 20 images, learning rate 0.001 (0.01 for the
# final classifier layer) multiplied by 0.1 every 2000 iterations, momentum 0.9, weight decay
# 0.0005. The authors' released LargeFOV solver and prototxt add: 6000 iterations, biases at
# twice the learning rate, random 321x321 crops with mirroring, no rescaling. Section 3.1 (Loss
# function): "we subsample the ground truth by 8 during training".
TRAINING = {
    "subsampled_loss": True,
    "optimizer": "sgd",
    "lr": 0.001,
    "head_lr_mult": 10.0,
    "bias_lr_mult": 2.0,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "step",
    "lr_steps": (2000, 4000),
    "lr_gamma": 0.1,
    "batch_size": 20,
    "iters": 6000,
    "img_size": 321,
    "scale_range": (1.0, 1.0),
    "hflip": True,
}
# Built-in shapes only (not the paper): VGG16 at quarter width with 256-channel fc6/fc7, Adam
# with poly decay and no 10x classifier rate, loss at full resolution (at 64 px, the stride-8
# scores are 8 x 8); see the README's quick profiles.
QUICK = {
    "subsampled_loss": False,
    "width": 0.25,
    "fc_channels": 256,
    "img_size": 64,
    "batch_size": 8,
    "optimizer": "adam",
    "lr": 1e-3,
    "head_lr_mult": 1.0,
    "bias_lr_mult": 1.0,
    "weight_decay": 0.0,
    "schedule": "poly",
    "iters": 2000,
    "val_every": 1000,
}

RECIPES = [
    Recipe(
        name="deeplabv1",
        task="semantic",
        paper=PAPER,
        model="segcli.recipes.nets.deeplab_v1:DeepLabLargeFOV",
        defaults=TRAINING,
        quick=QUICK,
        loss="segcli.nn.subsampled:subsampled_cross_entropy",
    )
]
