"""The DeepLab-LargeFOV network (Chen et al., arXiv:1412.7062; segcli.recipes.deeplab_v1 declares
the recipe): VGG16 with atrous convolution and the large field of view (section 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segcli.errors import ConfigError
from segcli.nn.stages import pooled_stages
from segcli.nn.vgg import vgg16_backbone, vgg16_channels


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
        fc_channels: int = 1024,  # section 5 (Field of View), table 2: DeepLab-CRF-LargeFOV's
        fc6_dilation: int = 12,  # fc6 is 3x3 at rate 12 with 1024 channels
        # Off in the network's own build (the recipe's defaults turn it on), so a model built
        # from its options alone returns input-size logits in both modes.
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
