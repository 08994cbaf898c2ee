"""Mask Scoring R-CNN's own parts: the MaskIoU target, the MaskIoU head, the mask score."""

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads

from segcli.recipe import get_recipe
from segcli.recipes.nets.ms_rcnn import MaskIoUHead, gt_fraction_in_boxes, maskiou_targets

# An object of 10 x 20 pixels in a 40 x 40 image (rows 10-19, columns 10-29).
GT = torch.zeros(1, 40, 40, dtype=torch.uint8)
GT[0, 10:20, 10:30] = 1


def target(probs, box) -> float:
    boxes = [torch.tensor([box], dtype=torch.float32)]
    return float(maskiou_targets(probs[None], boxes, [GT], [torch.tensor([0])])[0])


def test_maskiou_target_on_the_box_of_the_object():
    """Box = the object's box, so the projected ground truth fills the 4x4 grid; the predicted
    mask covers its left half: IoU = 8 / 16."""
    probs = torch.full((4, 4), 0.1)
    probs[:, :2] = 0.9
    assert target(probs, [10, 10, 30, 20]) == pytest.approx(0.5)
    assert target(torch.full((4, 4), 0.2), [10, 10, 30, 20]) == 0.0
    assert target(torch.full((4, 4), 0.7), [10, 10, 30, 20]) == pytest.approx(1.0)


def test_maskiou_target_counts_the_object_outside_the_box():
    """Box = the left half of the object, predicted mask = the whole box: in image pixels the
    prediction is 100 px, the object 200 px, their overlap 100 px, so IoU = 100 / 200 (not 1,
    which the box-cropped ground truth alone would give)."""
    box = [10, 10, 20, 20]
    share = gt_fraction_in_boxes(
        GT[0:1], torch.tensor([box], dtype=torch.float32), torch.tensor([0])
    )
    assert float(share[0]) == pytest.approx(0.5)
    assert target(torch.full((4, 4), 0.9), box) == pytest.approx(0.5)


def test_maskiou_head_is_the_papers():
    head = MaskIoUHead(256, 81)
    convs = [m for m in head.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (257, 256, (3, 3), (1, 1)), (256, 256, (3, 3), (1, 1)),
        (256, 256, (3, 3), (1, 1)), (256, 256, (3, 3), (2, 2)),
    ]  # fmt: skip
    fcs = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [f.out_features for f in fcs] == [1024, 1024, 81]
    assert head(torch.randn(3, 256, 14, 14), torch.rand(3, 1, 28, 28)).shape == (3, 81)


def quick_model():
    recipe = get_recipe("ms_rcnn")
    options = {**recipe.options, **{k: v for k, v in recipe.quick.items() if k in recipe.options}}
    torch.manual_seed(0)
    return recipe.build_model(4, **options)


def plain_roi_heads(heads) -> RoIHeads:
    """Plain torchvision RoIHeads sharing the Mask Scoring heads' modules and settings."""
    return RoIHeads(
        heads.box_roi_pool, heads.box_head, heads.box_predictor,
        heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold,
        heads.fg_bg_sampler.batch_size_per_image, heads.fg_bg_sampler.positive_fraction,
        heads.box_coder.weights, heads.score_thresh, heads.nms_thresh,
        heads.detections_per_img, heads.mask_roi_pool, heads.mask_head, heads.mask_predictor,
    ).eval()  # fmt: skip


def test_boxes_keep_the_class_score_and_masks_get_class_score_times_maskiou():
    """Section 3.3 re-scores the masks only: boxes, labels, scores and masks are plain
    torchvision RoIHeads' detections (same weights, same proposals) in the same order,
    mask_ious the MaskIoU head's output for the predicted class on the predicted mask, and
    mask_scores the class score times it."""
    model = quick_model().eval()
    heads = model.roi_heads
    with torch.no_grad():
        images, _ = model.transform([torch.rand(3, 96, 96)])
        features = model.backbone(images.tensors)
        proposals, _ = model.rpn(images, features)
        (out,), _ = heads(features, proposals, images.image_sizes)
        (plain,), _ = plain_roi_heads(heads)(features, proposals, images.image_sizes)
        roi = heads.mask_roi_pool(features, [plain["boxes"]], images.image_sizes)
        index = torch.arange(len(plain["labels"]))
        own = heads.mask_predictor(heads.mask_head(roi))[index, plain["labels"]]
        mask_ious = heads.maskiou_head(roi, own.sigmoid()[:, None])[index, plain["labels"]]
    assert len(plain["scores"]) > 1
    assert set(out) == {*plain, "mask_scores", "mask_ious"}
    for key in plain:
        assert torch.equal(out[key], plain[key]), key
    assert torch.equal(out["mask_ious"], mask_ious.clamp(0, 1))
    assert torch.equal(out["mask_scores"], plain["scores"] * out["mask_ious"])
    # the mask scores rank the detections differently from the box scores
    assert not torch.equal(out["mask_scores"].argsort(descending=True), index)


def test_train_step_on_an_image_without_objects():
    """No ground truth: every RoI is background, the mask and MaskIoU losses are zero but
    defined, and backward runs."""
    model = quick_model().train()
    target = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, 96, 96, dtype=torch.uint8),
    }
    losses = model([torch.rand(3, 96, 96)], [target])
    assert "loss_maskiou" in losses and "loss_mask" in losses
    assert all(torch.isfinite(v) for v in losses.values()), losses
    assert float(losses["loss_maskiou"].detach()) == 0.0
    sum(losses.values()).backward()


def test_gt_fraction_in_boxes_equals_cropped_pixel_counts():
    generator = torch.Generator().manual_seed(0)
    masks = (torch.rand(4, 30, 50, generator=generator) < 0.4).to(torch.uint8)
    corners = torch.rand(25, 2, 2, generator=generator) * torch.tensor([60.0, 40.0]) - 5
    boxes = torch.cat([corners.min(1).values, corners.max(1).values], dim=1)
    matched = torch.randint(0, 4, (25,), generator=generator)
    share = gt_fraction_in_boxes(masks, boxes, matched)
    for box, g, value in zip(boxes.round().long().tolist(), matched.tolist(), share.tolist()):
        x1, y1, x2, y2 = (max(v, 0) for v in box)
        expected = masks[g, y1:y2, x1:x2].sum() / masks[g].sum()
        assert value == pytest.approx(float(expected), abs=1e-6)
