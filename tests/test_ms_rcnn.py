"""Mask Scoring R-CNN's own parts: the MaskIoU target, the MaskIoU head, the calibrated score."""

import pytest
import torch

from segcli.recipe import get_recipe
from segcli.recipes.ms_rcnn import MaskIoUHead, gt_fraction_in_boxes, maskiou_targets

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


def test_calibrated_score_is_class_score_times_maskiou():
    recipe = get_recipe("ms_rcnn")
    options = {**recipe.options, **{k: v for k, v in recipe.quick.items() if k in recipe.options}}
    torch.manual_seed(0)
    model = recipe.build_model(4, **options).eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 96, 96)])
    assert len(out["scores"]) > 0
    assert torch.equal(out["scores"], out["cls_scores"] * out["mask_ious"])
    assert (out["mask_ious"] >= 0).all() and (out["mask_ious"] <= 1).all()
    assert torch.equal(out["scores"], out["scores"].sort(descending=True).values)
