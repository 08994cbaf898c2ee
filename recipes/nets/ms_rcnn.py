"""The Mask Scoring R-CNN network (Huang et al., arXiv:1903.00241; segcli.recipes.ms_rcnn declares
the recipe): Mask R-CNN whose RoI heads add the MaskIoU head (section 3.3)."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

# Undocumented torchvision internals, kept: MaskRCNN has no hook for a head that reads the mask
# branch's output, so the MaskIoU head subclasses RoIHeads (its sampling and post-processing
# methods); the losses stay torchvision's own, and the MaskIoU targets use the projection
# maskrcnn_loss uses. setup.cfg bounds torchvision for them.
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    fastrcnn_loss,
    maskrcnn_loss,
    project_masks_on_boxes,
)

from segcli.recipes.nets.mask_rcnn import CLASS_SPECIFIC, build_mask_rcnn

MASK_THRESHOLD = 0.5  # section 3.3: the predicted mask is binarised at 0.5 for the target


class MaskIoUHead(nn.Module):
    """(RoI features [R, C, 2S, 2S] at the mask's RoIAlign size, target-class mask
    probabilities [R, 1, 4S, 4S]) -> predicted MaskIoU of every class [R, num_classes]."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv_channels: int = 256,
        fc_channels: int = 1024,
        roi_size: int = 14,
    ):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)  # 28x28 mask -> 14x14
        layers, cin = [], in_channels + 1
        for stride in (1, 1, 1, 2):
            layers += [nn.Conv2d(cin, conv_channels, 3, stride, padding=1), nn.ReLU(inplace=True)]
            cin = conv_channels
        self.convs = nn.Sequential(*layers)
        flat = conv_channels * (roi_size // 2) ** 2
        self.fcs = nn.Sequential(
            nn.Linear(flat, fc_channels),
            nn.ReLU(inplace=True),
            nn.Linear(fc_channels, fc_channels),
            nn.ReLU(inplace=True),
        )
        self.fc_maskiou = nn.Linear(fc_channels, num_classes)
        for m in self.convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for m in self.fcs:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc_maskiou.weight, std=0.01)
        nn.init.zeros_(self.fc_maskiou.bias)

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        x = self.convs(torch.cat([features, self.pool(masks)], dim=1))
        return self.fc_maskiou(self.fcs(x.flatten(1)))


def gt_fraction_in_boxes(gt_masks: torch.Tensor, boxes: torch.Tensor, matched: torch.Tensor):
    """Share [R] of each matched ground-truth mask's pixels (gt_masks [G, H, W]) that lie
    inside its RoI box (boxes [R, 4] xyxy), from integral images of the matched masks."""
    if len(boxes) == 0:
        return boxes.new_zeros(0)
    used, index = torch.unique(matched, return_inverse=True)
    # int32 sums (an image has far fewer than 2^31 pixels): cumsum would promote to int64
    integral = gt_masks[used].cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32)
    integral = F.pad(integral, (1, 0, 1, 0))  # [U, H+1, W+1]
    h, w = gt_masks.shape[-2:]
    x1, x2 = (boxes[:, [0, 2]].round().long().clamp(0, w)).unbind(1)
    y1, y2 = (boxes[:, [1, 3]].round().long().clamp(0, h)).unbind(1)
    inside = (
        integral[index, y2, x2]
        - integral[index, y1, x2]
        - integral[index, y2, x1]
        + integral[index, y1, x1]
    )
    total = integral[index, -1, -1]
    return inside.float() / total.clamp(min=1).float()


def maskiou_targets(mask_probs, boxes, gt_masks, matched_idxs) -> torch.Tensor:
    """The MaskIoU target [R] of each positive RoI: IoU of its binarised predicted mask
    (mask_probs [R, M, M], target class) with its matched ground-truth mask.

    Both are compared on the RoI's M x M grid (the ground truth projected as for the mask loss);
    the part of the ground truth outside the box still counts in the union, its area taken
    from the share of the mask's pixels inside the box (as the reference implementations do).
    """
    m = mask_probs.shape[-1]
    truth = (
        torch.cat(
            [project_masks_on_boxes(g, b, i, m) for g, b, i in zip(gt_masks, boxes, matched_idxs)]
        )
        >= MASK_THRESHOLD
    )
    share = torch.cat(
        [gt_fraction_in_boxes(g, b, i) for g, b, i in zip(gt_masks, boxes, matched_idxs)]
    )
    pred = mask_probs >= MASK_THRESHOLD
    inter = (pred & truth).sum((1, 2)).float()
    truth_area = truth.sum((1, 2)).float() / share.clamp(min=1e-6)
    union = pred.sum((1, 2)).float() + truth_area - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-6), torch.zeros_like(union))


class MaskScoringRoIHeads(RoIHeads):
    """torchvision's RoIHeads plus the MaskIoU head. Train mode adds `loss_maskiou`; eval mode
    adds `mask_ious` and `mask_scores` = scores (classification) x mask_ious to each result."""

    def __init__(self, heads: RoIHeads, maskiou_head: MaskIoUHead):
        super().__init__(
            heads.box_roi_pool, heads.box_head, heads.box_predictor,
            heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image, heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights, heads.score_thresh, heads.nms_thresh,
            heads.detections_per_img, heads.mask_roi_pool, heads.mask_head, heads.mask_predictor,
        )  # fmt: skip
        self.maskiou_head = maskiou_head

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            return [], self._train_losses(features, proposals, image_shapes, targets)
        return self._detect(features, proposals, image_shapes), {}

    def _mask_branch(self, features, boxes, image_shapes, labels):
        """Mask logits [R, K, M, M], the target class's mask probabilities [R, M, M] and its
        predicted MaskIoU [R] for the boxes (a list per image) with their labels."""
        roi = self.mask_roi_pool(features, boxes, image_shapes)
        logits = self.mask_predictor(self.mask_head(roi))
        labels = torch.cat(labels)
        index = torch.arange(labels.shape[0], device=labels.device)  # not len(): traceable
        probs = logits[index, labels].sigmoid()
        return logits, probs, self.maskiou_head(roi, probs[:, None])[index, labels]

    def _train_losses(self, features, proposals, image_shapes, targets) -> dict:
        proposals, matched, labels, regression = self.select_training_samples(proposals, targets)
        box_feats = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_feats)
        loss_classifier, loss_box_reg = fastrcnn_loss(
            class_logits, box_regression, labels, regression
        )
        positive = [torch.where(lab > 0)[0] for lab in labels]
        boxes = [p[i] for p, i in zip(proposals, positive)]
        matched = [m[i] for m, i in zip(matched, positive)]
        pos_labels = [lab[i] for lab, i in zip(labels, positive)]
        gt_masks, gt_labels = [t["masks"] for t in targets], [t["labels"] for t in targets]
        logits, probs, ious = self._mask_branch(features, boxes, image_shapes, pos_labels)
        target = maskiou_targets(probs.detach(), boxes, gt_masks, matched)
        return {
            "loss_classifier": loss_classifier,
            "loss_box_reg": loss_box_reg,
            "loss_mask": maskrcnn_loss(logits, boxes, gt_masks, gt_labels, matched),
            # section 3.3: L2 regression, loss weight 1
            "loss_maskiou": F.mse_loss(ious, target) if len(target) else ious.sum() * 0,
        }

    def _detect(self, features, proposals, image_shapes) -> list[dict]:
        box_feats = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_feats)
        boxes, scores, labels = self.postprocess_detections(
            class_logits, box_regression, proposals, image_shapes
        )
        _, probs, ious = self._mask_branch(features, boxes, image_shapes, labels)
        counts = [b.shape[0] for b in boxes]
        masks, ious = probs[:, None].split(counts), ious.clamp(0, 1).split(counts)
        # Section 3.3 re-scores the masks only: the boxes keep torchvision's order and the
        # classification score, as the authors' code and MMDetection's MaskScoringRoIHead do.
        return [
            {"boxes": b, "labels": lab, "scores": s, "masks": m, "mask_scores": s * iou,
             "mask_ious": iou}
            for b, s, lab, m, iou in zip(boxes, scores, labels, masks, ious)
        ]  # fmt: skip


def build_ms_rcnn(num_classes: int, pretrained: bool = False, **options) -> nn.Module:
    """Mask R-CNN with MaskScoringRoIHeads; the MaskIoU head takes the pyramid's channels
    and its widths follow the mask head's convolutions and the box head's fc layers (256,
    256 and 1024 in both papers)."""
    model = build_mask_rcnn(num_classes, pretrained, **options)
    defaults = {k: p.default for k, p in inspect.signature(build_mask_rcnn).parameters.items()}
    widths = {**defaults, **options}
    head = MaskIoUHead(
        widths["fpn_channels"],
        num_classes,
        widths["mask_head_channels"],
        widths["box_head_channels"],
    )
    model.roi_heads = MaskScoringRoIHeads(model.roi_heads, head)
    # Mask R-CNN weights have no MaskIoU head: it starts as initialised, as a new head should.
    model.class_specific_modules = (*CLASS_SPECIFIC, "roi_heads.maskiou_head")
    return model
