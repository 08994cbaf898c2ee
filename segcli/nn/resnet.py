"""Dilated ResNets (He et al., arXiv:1512.03385) as the DeepLab v2/v3/v3+ backbone.

torchvision's ResNets with the strides of layer3/layer4 removed and their 3x3 convolutions
dilated instead ("atrous", DeepLab v2 section 3.1), so the features keep 1/8 or 1/16 of the
input resolution; block4's units can take DeepLab v3's multi-grid unit rates (section 3.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision import models
from torchvision.ops import FrozenBatchNorm2d

from segcli.errors import ConfigError
from segcli.nn.pretrained import load_pretrained
from segcli.nn.stages import resnet_stages

# name -> (torchvision builder, ImageNet weights). ResNet-50/101 are the papers' backbones;
# ResNet-18/34 (basic blocks) are lighter stand-ins for quick CPU runs.
RESNETS = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1),
    "resnet101": (models.resnet101, models.ResNet101_Weights.IMAGENET1K_V1),
}


class OnDilatedResNet:
    """What a model whose `backbone` is a DilatedResNet (or another backbone with `stages`)
    declares: the backbone's stages (for --freeze) and how torchvision's segmentation models
    name it (`backbone.conv1`, here `backbone.body.conv1`), so --weights
    torchvision:deeplabv3_resnet101 loads it."""

    weights_key_map = {"backbone.": "backbone.body."}

    @property
    def backbone_stages(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(f"backbone.{name}" for name in stage) for stage in self.backbone.stages)


class DilatedResNet(nn.Module):
    """model(images [B,3,H,W]) -> {"low": [B,C_low,H/4,W/4], "out": [B,C_out,H/os,W/os]}.

    `low` is layer1's output (DeepLab v3+'s stride-4 "Conv2" features), `out` layer4's.
    `multi_grid`: DeepLab v3's unit rates of block4 (default all 1).
    `width` scales every layer's channels (1.0 is the paper's network; smaller ones are for
    quick CPU runs and have no ImageNet weights).
    `frozen_bn`: torchvision's FrozenBatchNorm2d (statistics and affine fixed) in place of
    batch norm.
    """

    stages = resnet_stages("body")

    def __init__(
        self,
        name: str = "resnet101",
        output_stride: int = 16,
        multi_grid: Sequence[int] | None = None,
        pretrained: bool = False,
        width: float = 1.0,
        frozen_bn: bool = False,
    ):
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"setting 'output_stride': expected 8 or 16, got {output_stride!r}")
        norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        net = _resnet(name, pretrained, width, norm)
        multi_grid = multi_grid or [1] * len(net.layer4)
        if len(multi_grid) != len(net.layer4):
            raise ConfigError(
                f"setting 'multi_grid': {name}'s block4 has {len(net.layer4)} units, "
                f"got {len(multi_grid)} rates {tuple(multi_grid)}"
            )
        self.out_channels = net.fc.in_features  # 2048 (bottleneck) or 512 (basic blocks)
        self.low_channels = net.layer2[0].conv1.in_channels  # layer1's: 256 or 64
        # The rate doubles wherever a stride of 2 is removed (DeepLab v2 section 3.1).
        if output_stride == 8:
            dilate_layer(net.layer3, [2] * len(net.layer3))
        block4_rate = 32 // output_stride  # 2 at output stride 16, 4 at 8
        dilate_layer(net.layer4, [block4_rate * g for g in multi_grid])
        self.body = ResNetFeatures(net)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.body(images)


class ResNetFeatures(nn.Module):
    """images [B,3,H,W] -> {"low": layer1's output, "out": layer4's}: a torchvision ResNet
    without its pooling and classifier, its modules under their own names (so the state-dict
    keys are torchvision's), run as ResNet.forward runs them."""

    def __init__(self, net: models.ResNet):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(images)))))
        return {"low": low, "out": self.layer4(self.layer3(self.layer2(low)))}


def build_resnet(name: str, pretrained: bool = False, **kwargs) -> models.ResNet:
    """torchvision's ResNet `name` (one of RESNETS, else a ConfigError about the `backbone`
    setting), built with `kwargs` (e.g. norm_layer) and randomly initialised, or with its
    ImageNet weights from the local torch cache when `pretrained`."""
    check_resnet_name(name)
    net = RESNETS[name][0](weights=None, **kwargs)
    if pretrained:
        net.load_state_dict(imagenet_state(name))
    return net


def check_resnet_name(name: str) -> None:
    if name not in RESNETS:
        known = ", ".join(RESNETS)
        raise ConfigError(f"setting 'backbone': expected one of {known}, got {name!r}")


def imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """ResNet `name`'s ImageNet state dict (torchvision's keys, fc included) from the local
    torch cache (segcli.nn.pretrained)."""
    return load_pretrained(RESNETS[name][1], f"ImageNet {name}")


def _resnet(name: str, pretrained: bool, width: float, norm: type[nn.Module]) -> models.ResNet:
    """torchvision's ResNet `name` with `norm` layers, with ImageNet weights or at `width`
    times its channels."""
    if width == 1.0:
        return build_resnet(name, pretrained, norm_layer=norm)
    with torch.device("meta"):  # only the layout is kept: _narrow rebuilds every layer
        net = build_resnet(name, norm_layer=norm)
    if pretrained:
        raise ConfigError("--pretrained needs the full-width ResNet (--set width=1.0)")
    _narrow(net, width, norm)
    return net


def _narrow(net: models.ResNet, width: float, norm: type[nn.Module]) -> None:
    """Rebuild the stem and layer1-4 of `net` with `width` times the channels, from
    torchvision's own blocks and initialisation (fc is only kept for its in_features)."""
    block = type(net.layer1[0])
    planes = [max(8, round(p * width)) for p in (64, 128, 256, 512)]
    net.conv1 = nn.Conv2d(3, planes[0], 7, stride=2, padding=3, bias=False)
    net.bn1 = norm(planes[0])
    inplanes = planes[0]
    for i, p in enumerate(planes, 1):
        units = len(getattr(net, f"layer{i}"))
        layer = resnet_layer(block, inplanes, p, units, 1 if i == 1 else 2, norm)
        setattr(net, f"layer{i}", layer)
        inplanes = p * block.expansion
    net.fc = nn.Linear(planes[3] * block.expansion, 1)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet_layer(
    block: type[nn.Module], inplanes: int, planes: int, units: int, stride: int, norm
) -> nn.Sequential:
    """`units` torchvision ResNet blocks (BasicBlock or Bottleneck) of `planes` channels, the
    first with `stride` and a 1x1 projection shortcut where the shape changes: the layer
    torchvision's ResNet builds (He et al. section 3.3, option B), in the same module order."""
    out = planes * block.expansion
    shortcut = None
    if stride != 1 or inplanes != out:
        shortcut = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), norm(out))
    first = block(inplanes, planes, stride, shortcut, norm_layer=norm)
    return nn.Sequential(first, *(block(out, planes, norm_layer=norm) for _ in range(1, units)))


def dilate_layer(layer: nn.Sequential, rates: Sequence[int]) -> None:
    """Remove `layer`'s stride and give block i's 3x3 convolutions dilation `rates[i]`.

    Works for basic and bottleneck blocks alike (the stride sits on different convolutions);
    padding equals the dilation so each block keeps its input size.
    """
    for block, rate in zip(layer, rates):
        for conv in block.modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (rate, rate), (rate, rate)
