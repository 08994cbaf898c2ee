"""Every recipe, parametrized over list_recipes(): builds, trains a step, evaluates at any size."""

import pytest
import torch
from torch.utils.data import default_collate

from segcli.recipe import list_recipes, load_object
from segcli.tasks.semantic import cross_entropy

from helpers import TINY_YOLACT

ODD_SIZE = (67, 45)  # H, W: not a multiple of any network stride
RECIPES = list_recipes()
# The R-CNN family on small images with the quick profile's lighter ResNet-18-FPN, narrower.
TINY_RCNN = {
    "backbone": "resnet18",
    "fpn_channels": 32,
    "min_size": 64,
    "max_size": 96,
    "anchor_sizes": (16, 32, 64, 128, 256),
    "rpn_proposals_train": 100,
    "rpn_proposals_test": 50,
    "box_batch_size": 32,
    "box_head_channels": 64,
    "mask_head_channels": 32,
}
# Narrower networks (same layers and blocks) for recipes whose paper-size model would make
# these steps slow on a CPU; the paper-size models are still built, on the meta device, by
# count_parameters below, and their parameter counts checked in test_deeplab.py.
TEST_OPTIONS = {
    **{name: {"width": 0.125, "fc_channels": 64} for name in ("fcn32s", "fcn16s", "fcn8s")},
    "deeplabv1": {"width": 0.125, "fc_channels": 64},
    "deeplabv2": {"backbone": "resnet50", "width": 0.125},
    "deeplabv3": {"backbone": "resnet50", "width": 0.125, "channels": 32},
    "deeplabv3plus": {"backbone": "resnet50", "width": 0.125, "channels": 32},
    "deeplabv3plus_r101": {"backbone": "resnet50", "width": 0.125, "channels": 32},
    "mask_rcnn": TINY_RCNN,
    "ms_rcnn": TINY_RCNN,
    "yolact": TINY_YOLACT,
    "yolact_r50": TINY_YOLACT,
}
# torchvision's detection losses, plus Mask Scoring R-CNN's MaskIoU regression
RCNN_LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg",
               "loss_mask"}  # fmt: skip
EXPECTED_LOSSES = {"mask_rcnn": RCNN_LOSSES, "ms_rcnn": RCNN_LOSSES | {"loss_maskiou"}}
EXPECTED_LOSSES["yolact"] = EXPECTED_LOSSES["yolact_r50"] = {
    "loss_cls", "loss_box", "loss_mask", "loss_semantic"}  # fmt: skip


def options_for(recipe) -> dict:
    return {**recipe.options, **TEST_OPTIONS.get(recipe.name, {})}


def semantic_step(recipe, model, num_classes):
    images = torch.randn(2, 3, *ODD_SIZE)
    target = torch.randint(0, num_classes, (2, *ODD_SIZE))
    target[:, :4] = 255
    if recipe.prepare_target:  # as the loader workers prepare it, batched
        prepare = load_object(recipe.prepare_target)
        target = default_collate([prepare(mask, 255) for mask in target])
    outputs = model(images)
    criterion = recipe.criterion or cross_entropy
    return criterion(outputs, target, 255)


def instance_images() -> list[torch.Tensor]:
    return [torch.rand(3, *ODD_SIZE), torch.rand(3, *ODD_SIZE[::-1])]


def instance_step(recipe, model, num_classes):
    """Two images of different sizes with two objects each (torchvision's target format)."""
    targets = []
    for image in (images := instance_images()):
        masks = torch.zeros(2, *image.shape[1:], dtype=torch.uint8)
        masks[0, 5:30, 4:20] = 1
        masks[1, 30:44, 22:40] = 1
        boxes = torch.tensor([[4.0, 5, 20, 30], [22, 30, 40, 44]])
        targets.append({"boxes": boxes, "labels": torch.tensor([1, num_classes - 1]),
                        "masks": masks})  # fmt: skip
    losses = model(images, targets)
    assert set(losses) >= EXPECTED_LOSSES.get(recipe.name, set()), sorted(losses)
    return losses


STEPS = {"semantic": semantic_step, "instance": instance_step}


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_train_steps_reach_every_trainable_parameter(recipe):
    torch.manual_seed(0)
    model = recipe.build_model(3, **options_for(recipe)).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    # The first step moves zero-initialised score layers (FCN) so the second reaches everything.
    for step in range(2):
        optimizer.zero_grad()
        losses = STEPS[recipe.task](recipe, model, 3)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        loss.backward()
        if step == 0:
            optimizer.step()
    silent = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert silent == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_eval_output_has_input_size(recipe):
    model = recipe.build_model(5, **options_for(recipe)).eval()
    if recipe.task == "instance":
        check_detections(model, 5)
        return
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *ODD_SIZE))
    assert logits.shape == (1, 5, *ODD_SIZE)


def check_detections(model, num_classes):
    """DESIGN.md's instance format: boxes [N,4] xyxy pixels, labels [N] in 1..K, scores [N],
    masks [N,1,H,W] probabilities at the input size."""
    torch.manual_seed(0)
    images = instance_images()
    with torch.no_grad():
        outputs = model(images)
    assert len(outputs) == len(images)
    for image, out in zip(images, outputs):
        n, (h, w) = len(out["scores"]), image.shape[1:]
        assert out["boxes"].shape == (n, 4) and out["masks"].shape == (n, 1, h, w)
        assert out["labels"].dtype == torch.int64 and out["labels"].shape == (n,)
        assert ((out["labels"] >= 1) & (out["labels"] < num_classes)).all()
        assert ((out["masks"] >= 0) & (out["masks"] <= 1)).all()
        assert (out["boxes"][:, 2:] <= torch.tensor([w, h])).all() and (out["boxes"] >= 0).all()
    assert sum(len(out["scores"]) for out in outputs) > 0  # untrained, but it does detect


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_recipe_declares_paper_and_cited_defaults(recipe):
    assert recipe.paper and "arXiv:" in recipe.paper
    assert recipe.defaults, "the paper's training settings belong in defaults"
    assert recipe.count_parameters() > 0
