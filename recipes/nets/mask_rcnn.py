"""The Mask R-CNN network (He et al., arXiv:1703.06870; segcli.recipes.mask_rcnn declares the
recipe and cites its settings): torchvision's MaskRCNN with the paper's FPN variant (section
3.1), built from segcli's options."""

from __future__ import annotations

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from segcli.errors import ConfigError
from segcli.nn.resnet import check_resnet_name, imagenet_state
from segcli.nn.stages import resnet_stages

ASPECT_RATIOS = (0.5, 1.0, 2.0)  # section 3.1: 3 aspect ratios, following FPN


def resnet_fpn(
    name: str, pretrained: bool, channels: int = 256, frozen_bn: bool = False
) -> BackboneWithFPN:
    """torchvision's ResNet-FPN (P2-P6, 256 channels unless `channels` says otherwise). With
    `frozen_bn` (the default whenever a run starts from ImageNet or detection weights) batch
    norm is frozen and the stem and layer1 stay fixed, as in the paper's Detectron; otherwise
    every layer trains with batch norm."""
    check_resnet_name(name)
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    trainable = 3 if frozen_bn else 5  # Detectron's FREEZE_AT 2: the stem and layer1 fixed
    backbone = resnet_fpn_backbone(
        backbone_name=name, weights=None, norm_layer=norm, trainable_layers=trainable
    )
    if pretrained:  # from the local torch cache (segcli.nn.pretrained), not a download
        imagenet = imagenet_state(name)
        backbone.body.load_state_dict({k: v for k, v in imagenet.items() if k[:3] != "fc."})
    if channels != backbone.out_channels:  # a narrower pyramid for the quick CPU profile
        widths = [block[0].in_channels for block in backbone.fpn.inner_blocks]
        backbone.fpn = FeaturePyramidNetwork(widths, channels, extra_blocks=LastLevelMaxPool())
        backbone.out_channels = channels
    return backbone


# The defaults: section 3.1 (Implementation Details, "Training" and "Inference") unless noted.
def build_mask_rcnn(
    num_classes: int,
    pretrained: bool = False,
    backbone: str = "resnet50",  # ResNet-50-FPN; --set backbone=resnet101 for R-101-FPN
    fpn_channels: int = 256,  # the FPN paper's d = 256 channels in every pyramid level
    min_size: int = 800,  # "images are resized such that their scale (shorter edge) is 800 pixels"
    max_size: int = 1333,  # the long-side cap of the reference Detectron configs
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),  # "5 scales ... following FPN"
    rpn_proposals_train: int = 2000,  # FPN paper section 5.1: 2000 proposals per training image
    rpn_proposals_test: int = 1000,  # "the proposal number is 1000 for FPN" at test time
    box_batch_size: int = 512,  # "N is 64 for the C4 backbone and 512 for FPN", 1:3 pos:neg
    box_head_channels: int = 1024,  # figure 4 (right): the FPN box head's two 1024-d fc layers
    mask_head_channels: int = 256,  # figure 4 (right): four 3x3 convs of 256 channels, 28x28
    # Section 3.1 starts from ImageNet weights with frozen batch norm (Detectron's FrozenBN):
    # the recipe's pretrained_options set it for --pretrained and --weights; from scratch it
    # trains.
    frozen_bn: bool = False,
) -> MaskRCNN:
    """Mask R-CNN for `num_classes` classes (background included).

    The model resizes every image to `min_size` on its short side (at most `max_size` on the
    long one) in train and eval mode alike and returns boxes and masks at the input's size.
    """
    if len(anchor_sizes) != 5:
        raise ConfigError(f"setting 'anchor_sizes': one size per level P2-P6, got {anchor_sizes}")
    c = mask_head_channels
    model = MaskRCNN(
        resnet_fpn(backbone, pretrained, fpn_channels, frozen_bn),
        num_classes=None,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=AnchorGenerator(
            tuple((s,) for s in anchor_sizes), (ASPECT_RATIOS,) * len(anchor_sizes)
        ),
        rpn_pre_nms_top_n_train=rpn_proposals_train,
        rpn_post_nms_top_n_train=rpn_proposals_train,
        rpn_pre_nms_top_n_test=rpn_proposals_test,
        rpn_post_nms_top_n_test=rpn_proposals_test,
        box_batch_size_per_image=box_batch_size,
        box_head=TwoMLPHead(fpn_channels * 7 * 7, box_head_channels),
        box_predictor=FastRCNNPredictor(box_head_channels, num_classes),
        mask_head=MaskRCNNHeads(fpn_channels, (c, c, c, c), 1),
        mask_predictor=MaskRCNNPredictor(c, c, num_classes),
    )
    model.backbone_stages = resnet_stages("backbone.body")
    model.class_specific_modules = CLASS_SPECIFIC
    return model


CLASS_SPECIFIC = ("roi_heads.box_predictor", "roi_heads.mask_predictor")
