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

import torch
import torch.nn.functional as F
from torch import nn

from segcli.errors import ConfigError
from segcli.nn.stages import pooled_stages
from segcli.nn.subsampled import subsampled_cross_entropy
from segcli.nn.vgg import vgg16_backbone, vgg16_channels
from segcli.recipe import Recipe

PAPER = (
    "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs "
    "(arXiv:1412.7062)"
)


def large_fov_features(features: nn.Sequential) -> nn.Sequential:
    """Make torchvision's VGG16 conv layers dense in place: pool1-3 3x3 / stride 2 / pad 1,
    pool4-5 3x3 / stride 1 / pad 1, conv5_x atrous at rate 2. [B,3,H,W] -> [B,C,H/8,W/8]"""
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    for n, i in enumerate(pools):
        features[i] = nn.MaxPool2d(3, stride=2 if n < 3 else 1, padding=1)
    for conv in features[pools[3] :].modules():  # conv5_1 .. conv5_3
        if isinstance(conv, nn.Conv2d):
            conv.dilation, conv.padding = (2, 2), (2, 2)
    return features


def decimate_fc(fc: dict[str, torch.Tensor], channels: int) -> dict[str, torch.Tensor]:
    """VGG16's fc6 [4096,512,7,7] / fc7 [4096,4096,1,1] subsampled "by simple decimation"
    (section 3.2) to fc6 [channels,512,3,3] and fc7 [channels,channels,1,1]."""
    source = fc["weight6"].shape[0]  # 4096
    if source % channels:
        raise ConfigError(f"--pretrained: fc_channels must divide {source}, got {channels}")
    step = source // channels
    return {
        "weight6": fc["weight6"][::step, :, ::3, ::3],
        "bias6": fc["bias6"][::step],
        "weight7": fc["weight7"][::step, ::step],
        "bias7": fc["bias7"][::step],
    }


def _fc(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    # dropout 0.5 after fc6 and fc7, as in VGG and the authors' LargeFOV net
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
    )


class DeepLabLargeFOV(nn.Module):
    """model(images [B,3,H,W]) -> logits [B,K,H,W]; scores at output stride 8."""

    head_modules = ("classifier",)  # section 5 (Training): 10x learning rate for the classifier
    class_specific_modules = ("classifier",)

    def __init__(
        self,
        num_classes: int,
        pretrained: bool = False,
        width: float = 1.0,
        fc_channels: int = 1024,
        fc6_dilation: int = 12,
        subsampled_loss: bool = False,
    ):
        super().__init__()
        self.subsampled_loss = subsampled_loss
        features, fc = vgg16_backbone(pretrained, width)
        self.features = large_fov_features(features)
        # The authors' LargeFOV prototxt: pool5a, AVE 3x3 / stride 1 / pad 1, before fc6. Caffe
        # divides by 9 at the borders too, PyTorch's count_include_pad default.
        self.pool5a = nn.AvgPool2d(3, stride=1, padding=1)
        self.backbone_stages = (*pooled_stages("features", self.features), ("fc6", "fc7"))
        self.fc6 = _fc(vgg16_channels(width)[2], fc_channels, 3, fc6_dilation)
        self.fc7 = _fc(fc_channels, fc_channels, 1)
        self.classifier = nn.Conv2d(fc_channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)  # the authors' fc8: gaussian 0.01
        nn.init.zeros_(self.classifier.bias)
        if fc:
            small = decimate_fc(fc, fc_channels)
            with torch.no_grad():
                for conv, n in ((self.fc6[0], 6), (self.fc7[0], 7)):
                    conv.weight.copy_(small[f"weight{n}"])
                    conv.bias.copy_(small[f"bias{n}"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(self.fc7(self.fc6(self.pool5a(self.features(images)))))
        if self.training and self.subsampled_loss:
            return scores  # [B,K,H/8,W/8] for subsampled_cross_entropy
        return F.interpolate(scores, images.shape[-2:], mode="bilinear", align_corners=False)


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
# Section 5 (Field of View), table 2 (DeepLab-CRF-LargeFOV): fc6 3x3 at rate 12, 1024 channels.
# subsampled_loss is off in the network's own build (the TRAINING defaults turn it on), so a
# model built from its options alone returns input-size logits in both modes.
OPTIONS = {"width": 1.0, "fc_channels": 1024, "fc6_dilation": 12, "subsampled_loss": False}
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
        build_model=DeepLabLargeFOV,
        defaults=TRAINING,
        options=OPTIONS,
        quick=QUICK,
        criterion=subsampled_cross_entropy,
    )
]
