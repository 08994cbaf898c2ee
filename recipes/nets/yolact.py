"""The YOLACT network (Bolya et al., arXiv:1904.02689; segcli.recipes.yolact declares the recipe
and cites its settings): ResNet-FPN P3-P7, a shared prediction head with mask coefficients, a
protonet, Fast NMS (section 5) and the losses of section 3-5."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import Matcher  # private, no public equivalent: setup.cfg
from torchvision.ops import batched_nms, box_iou

from segcli.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from segcli.errors import ConfigError
from segcli.nn.fpn import conv_relu, resnet_fpn_p3p7
from segcli.nn.stages import resnet_stages
from segcli.ops.boxes import SSD_BOX_CODER, crop_masks, grid_anchors
from segcli.ops.nms import fast_nms
from segcli.recipes.yolact import ASPECT_RATIOS, PAPER_SIZE, SCALES

# Section 4 and the reference config: IoU >= 0.5 positive, < 0.4 negative, OHEM at 3:1; loss
# weights 1 (class), 1.5 (box), 6.125 (mask), 1 (semantic); at most 100 positives per image
# train the masks.
POS_IOU, NEG_IOU, NEG_POS_RATIO, MASKS_TO_TRAIN = 0.5, 0.4, 3, 100
W_CLS, W_BOX, W_MASK, W_SEMANTIC = 1.0, 1.5, 6.125, 1.0
# Section 5 and the reference config: confidence 0.05, per class top_k 200, Fast NMS IoU 0.5,
# at most 100 detections per image.
SCORE_THRESH, TOP_K, NMS_IOU, MAX_DETECTIONS = 0.05, 200, 0.5, 100
# The profiler range around either NMS: `segcli benchmark` counts it as the NMS stage.
NMS_LABEL = "segcli::nms"


class PredictionHead(nn.Module):
    """Shared by P3..P7 (sections 3.2 and 4): a 3x3 conv + ReLU, then three 3x3 branches per anchor:
    c+1 class scores, 4 box offsets (SSD encoding), k tanh mask coefficients."""

    def __init__(self, channels: int, num_classes: int, num_prototypes: int, anchors: int):
        super().__init__()
        self.upfeature = conv_relu(channels, channels)
        self.cls = nn.Conv2d(channels, anchors * num_classes, 3, padding=1)
        self.box = nn.Conv2d(channels, anchors * 4, 3, padding=1)
        self.coef = nn.Conv2d(channels, anchors * num_prototypes, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """features: [B,C,H_l,W_l] per level -> cls [B,A,c+1], box [B,A,4], coef [B,A,k]."""
        outs = {"cls": [], "box": [], "coef": []}
        for x in features:
            x = self.upfeature(x)
            for name in outs:
                y = getattr(self, name)(x)  # [B, a*n, H, W] -> [B, H*W*a, n]
                b, _, h, w = y.shape
                outs[name].append(y.permute(0, 2, 3, 1).reshape(b, h * w * self.anchors, -1))
        cls, box, coef = (torch.cat(outs[name], 1) for name in ("cls", "box", "coef"))
        return cls, box, torch.tanh(coef)

    @property
    def anchors(self) -> int:
        return self.box.out_channels // 4


def protonet(channels: int, num_prototypes: int) -> nn.Sequential:
    """P3 [B,C,H,W] -> prototypes [B,k,2H,2W] (section 3.1, figure 3): three 3x3 convs, 2x
    bilinear upsampling, a 3x3 conv and a 1x1 conv to k, each followed by ReLU."""
    return nn.Sequential(
        *[conv_relu(channels, channels) for _ in range(3)],
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        conv_relu(channels, channels),
        conv_relu(channels, num_prototypes, kernel=1),
    )


class SquareResize(nn.Module):
    """list of [3,H,W] (or a [B,3,H,W] batch) in [0,1] -> [B,3,size,size], normalised with
    ImageNet's mean and std (section 4: resized to 550 x 550 whatever the aspect ratio)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    def forward(self, images: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        size = (self.size, self.size)
        batches = [images] if isinstance(images, torch.Tensor) else [x[None] for x in images]
        resized = [
            x
            if tuple(x.shape[-2:]) == size and not torch.jit.is_tracing()  # export: any size
            else F.interpolate(x, size, mode="bilinear", align_corners=False)
            for x in batches
        ]
        return (torch.cat(resized) - self.mean) / self.std


class Yolact(nn.Module):
    """train: model(list[image [3,H,W]], list[target]) -> {loss_cls, loss_box, loss_mask,
    loss_semantic}; eval: model(list[image]) -> list[dict(boxes [N,4] xyxy px, labels [N] in
    1..K, scores [N], masks [N,1,H,W] probabilities, zero outside the box)].

    A target holds boxes [G,4] xyxy px, labels [G] in 1..K and masks [G,H,W] (0/1).
    num_classes counts the background (class 0), as in torchvision.
    """

    nms_labels = (NMS_LABEL,)  # the benchmark's stage breakdown (segcli.commands)

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet101",
        size: int = PAPER_SIZE,
        anchor_scales: tuple[int, ...] = SCALES,
        num_prototypes: int = 32,  # section 3.1 / table 2b: k = 32
        fpn_channels: int = 256,
        nms: str = "fast",
        pretrained: bool = False,
    ):
        super().__init__()
        if nms not in ("fast", "standard"):
            raise ConfigError(f"setting 'nms': expected fast or standard, got {nms!r}")
        if len(anchor_scales) != 5:
            raise ConfigError(f"setting 'anchor_scales': one per level P3-P7, got {anchor_scales}")
        self.num_classes, self.nms, self.anchor_scales = num_classes, nms, tuple(anchor_scales)
        self.transform = SquareResize(size)
        self.backbone = resnet_fpn_p3p7(backbone, fpn_channels, pretrained)
        self.protonet = protonet(fpn_channels, num_prototypes)
        self.head = PredictionHead(fpn_channels, num_classes, num_prototypes, len(ASPECT_RATIOS))
        # Section 5: semantic segmentation on P3 during training only, sigmoid over c classes.
        self.semantic = nn.Conv2d(fpn_channels, num_classes - 1, 1)
        self.matcher = Matcher(POS_IOU, NEG_IOU, allow_low_quality_matches=True)
        self._anchor_cache: dict = {}
        self.backbone_stages = resnet_stages("backbone.body")
        self.class_specific_modules = ("head.cls", "semantic")

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        x = self.transform(images)
        features = list(self.backbone(x).values())  # P3..P7
        prototypes = self.protonet(features[0])  # [B, k, h, w]
        cls, box, coef = self.head(features)
        anchors = self._anchors([f.shape[-2:] for f in features], x.device)
        if self.training:
            if targets is None:
                raise ValueError("YOLACT in train mode needs targets")
            semantic = self.semantic(features[0])
            sizes = [image.shape[-2:] for image in images]
            return yolact_losses(
                cls, box, coef, prototypes, semantic, anchors, targets, sizes, self.matcher
            )
        return [
            detect(cls[i], box[i], coef[i], prototypes[i], anchors, image.shape[-2:], self.nms)
            for i, image in enumerate(images)
        ]

    def export_module(self) -> nn.Module:
        """The network up to coefficients and prototypes, for `segcli export`."""
        from segcli.recipes.nets.yolact_export import YolactHeads

        return YolactHeads(self)

    def _anchors(self, grid_sizes, device) -> torch.Tensor:
        key = (tuple(tuple(s) for s in grid_sizes), str(device))
        if key not in self._anchor_cache:
            scales = [s / self.transform.size for s in self.anchor_scales]
            self._anchor_cache[key] = grid_anchors(key[0], scales, ASPECT_RATIOS, device)
        return self._anchor_cache[key]


def detect(cls, box, coef, prototypes, anchors, image_size, nms: str = "fast") -> dict:
    """One image's detections (also an exported YOLACT's, outside it): cls [A,K+1], box [A,4],
    coef [A,k], prototypes [k,h,w], anchors [A,4]; image_size (H, W). Every (anchor, class)
    scoring > 0.05 is a candidate; NMS; masks are assembled for the kept ones (section 3.3)."""
    h, w = image_size
    scores = cls.softmax(-1)[:, 1:]  # [A, K]
    anchor, label = torch.nonzero(scores > SCORE_THRESH, as_tuple=True)
    scores = scores[anchor, label]
    boxes = SSD_BOX_CODER.decode_single(box[anchor], anchors[anchor]).clamp(0, 1)
    with torch.profiler.record_function(NMS_LABEL):
        if nms == "fast":
            keep = fast_nms(boxes, scores, label, NMS_IOU, TOP_K)
        else:
            keep = batched_nms(boxes, scores, label, NMS_IOU)
    keep = keep[:MAX_DETECTIONS]
    boxes = boxes[keep] * torch.tensor([w, h, w, h], device=boxes.device)
    k, ph, pw = prototypes.shape
    masks = torch.sigmoid(coef[anchor[keep]] @ prototypes.view(k, ph * pw)).view(-1, ph, pw)
    # N on the batch axis: interpolate refuses a 0-channel input but takes a 0-image batch.
    masks = F.interpolate(masks[:, None], (h, w), mode="bilinear", align_corners=False)
    masks = crop_masks(masks[:, 0], boxes)
    return {
        "boxes": boxes,
        "labels": label[keep] + 1,
        "scores": scores[keep],
        "masks": masks[:, None],
    }


def yolact_losses(cls, box, coef, prototypes, semantic, anchors, targets, sizes, matcher) -> dict:
    """The four training losses (sections 3.3, 4 and 5); every one is normalised by the number of
    positive anchors in the batch, except the semantic one (by the batch size)."""
    class_t, matched, rel_boxes = [], [], []
    for target, (h, w) in zip(targets, sizes):
        scale = torch.tensor([w, h, w, h], device=box.device, dtype=torch.float32)
        rel = target["boxes"].to(box.device, torch.float32) / scale
        labels = target["labels"].to(box.device)
        index, cls_target = match_anchors(anchors, rel, labels, matcher)
        class_t.append(cls_target)
        matched.append(index)
        rel_boxes.append(rel)
    class_t = torch.stack(class_t)  # [B, A]: 0 background, -1 ignored, else the class
    positive = class_t > 0
    num_pos = positive.sum().clamp(min=1)
    gt_boxes = torch.cat([rel[i[p]] for rel, i, p in zip(rel_boxes, matched, positive)])
    box_t = SSD_BOX_CODER.encode_single(gt_boxes, anchors.expand(len(sizes), -1, -1)[positive])
    loss_box = F.smooth_l1_loss(box[positive], box_t, reduction="sum")
    loss_mask = sum(
        mask_loss(
            coef[b], prototypes[b], targets[b]["masks"], rel_boxes[b], matched[b], positive[b]
        )
        for b in range(len(sizes))
    )
    return {
        "loss_cls": W_CLS * ohem_cross_entropy(cls, class_t, NEG_POS_RATIO) / num_pos,
        "loss_box": W_BOX * loss_box / num_pos,
        "loss_mask": W_MASK * loss_mask / num_pos,
        "loss_semantic": W_SEMANTIC * semantic_loss(semantic, targets),
    }


def match_anchors(anchors, boxes, labels, matcher) -> tuple[torch.Tensor, torch.Tensor]:
    """(matched gt index [A], class target [A]: the gt's label, 0 background, -1 ignored)."""
    if len(boxes) == 0:
        zeros = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
        return zeros, zeros.clone()
    matches = matcher(box_iou(boxes, anchors))
    index = matches.clamp(min=0)
    target = labels[index].long()
    target[matches == Matcher.BELOW_LOW_THRESHOLD] = 0
    target[matches == Matcher.BETWEEN_THRESHOLDS] = -1
    return index, target


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ratio: int) -> torch.Tensor:
    """Softmax cross-entropy summed over the positives and, per image, the `ratio` x as many
    background anchors with the highest background loss (online hard example mining, SSD
    section 2.2 as used by YOLACT section 4). logits [B,A,n], target [B,A] (-1: ignored)."""
    positive = target > 0
    with torch.no_grad():
        background_loss = torch.logsumexp(logits, -1) - logits[..., 0]
        background_loss[target != 0] = -1  # only true negatives compete
        rank = background_loss.argsort(1, descending=True).argsort(1)
        num_neg = (ratio * positive.sum(1, keepdim=True)).clamp(max=logits.shape[1] - 1)
        chosen = positive | ((rank < num_neg) & (target == 0))
    return F.cross_entropy(logits[chosen].float(), target[chosen], reduction="sum")


def mask_loss(coef, prototypes, gt_masks, gt_boxes, matched, positive) -> torch.Tensor:
    """Section 3.3: BCE between sigmoid(P c) and the matched gt mask at prototype resolution,
    counted only inside the gt box and divided by the box's area, summed over positives.
    coef [A,k], prototypes [k,h,w], gt_masks [G,H,W], gt_boxes [G,4] relative."""
    index = torch.nonzero(positive).squeeze(1)
    if len(index) > MASKS_TO_TRAIN:  # reference code: a random subset bounds the cost
        index = index[torch.randperm(len(index), device=index.device)[:MASKS_TO_TRAIN]]
    if len(index) == 0:
        return coef.sum() * 0
    k, h, w = prototypes.shape
    targets = _resize_masks(gt_masks.to(coef.device), (h, w))[matched[index]]  # [n, h, w]
    logits = (coef[index] @ prototypes.view(k, h * w)).view(-1, h, w).float()
    boxes = gt_boxes[matched[index]] * torch.tensor([w, h, w, h], device=logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1)
    return (crop_masks(bce, boxes).sum((1, 2)) / area).sum()


def semantic_loss(logits: torch.Tensor, targets: list[dict]) -> torch.Tensor:
    """Section 5: per-class sigmoid BCE on P3 against the union of each class's gt masks,
    averaged over pixels and images. logits [B, K, h, w] (no background channel)."""
    b, k, h, w = logits.shape
    target = logits.new_zeros((b, k, h, w), dtype=torch.float32)
    for i, t in enumerate(targets):
        if len(t["labels"]):
            masks = _resize_masks(t["masks"].to(logits.device), (h, w))
            one_hot = F.one_hot(t["labels"].to(logits.device) - 1, k).float()  # [G, K]
            target[i] = (one_hot.T @ masks.flatten(1)).view(k, h, w).clamp(max=1)
    return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum") / (b * h * w)


def _resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[G,H,W] 0/1 -> [G,h,w] float 0/1 (bilinear, then > 0.5, as the reference code does)."""
    if len(masks) == 0:
        return torch.zeros((0, *size), device=masks.device)
    resized = F.interpolate(masks[None].float(), size, mode="bilinear", align_corners=False)
    return resized[0].gt(0.5).float()


def build_yolact(num_classes: int, pretrained: bool = False, **options) -> Yolact:
    return Yolact(num_classes, pretrained=pretrained, **options)
