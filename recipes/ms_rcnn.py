"""Mask Scoring R-CNN: Huang, Huang, Gong, Huang & Wang, "Mask Scoring R-CNN", CVPR 2019,
arXiv:1903.00241.

Mask R-CNN (recipes/mask_rcnn.py) plus the MaskIoU head (section 3.3): it regresses the IoU
between each predicted mask and its ground truth from the RoIAlign feature (14x14x256)
concatenated with the target class's predicted mask max-pooled to 14x14 (kernel 2, stride 2),
through four 3x3 convolutions of 256 channels (the last with stride 2) and three fully connected
layers (1024, 1024, C). It is trained with an L2 loss of weight 1 on the positive RoIs, against
the IoU of the binarised (0.5) predicted mask with the matched ground truth, for the target class
only. At inference the mask score is the classification score times the predicted MaskIoU
(`mask_scores`, what mask AP ranks by); the boxes keep the classification score (`scores`, what
box AP and `infer --score-threshold` use), as in the authors' code and MMDetection.

torchvision keeps the mask logits local inside RoIHeads.forward, so MaskScoringRoIHeads
subclasses RoIHeads and rebuilds forward from its methods and module-level functions
(fastrcnn_loss, maskrcnn_loss, project_masks_on_boxes). At inference the masks are the target
class's probabilities that the MaskIoU head takes anyway, as maskrcnn_inference would give them,
without a sigmoid over every class's logits.

Choices the paper leaves open: the predicted MaskIoU is clamped to [0, 1] at inference (an IoU
lies there; mask scores stay non-negative); initialisation follows mmdetection's MaskIoUHead
(Kaiming convs, Xavier fcs, N(0, 0.01) output).
"""

from __future__ import annotations

from segcli.recipe import Recipe
from segcli.recipes.mask_rcnn import PAPER_DEFAULTS, PRETRAINED, QUICK, rcnn_resize

PAPER = "Mask Scoring R-CNN (arXiv:1903.00241)"


# Section 4 (Implementation details): the Mask R-CNN settings (SGD, momentum 0.9, weight decay
# 1e-4, lr 0.02 for 16 images, 2 per GPU), 18 epochs with the lr divided by 10 after epochs 14
# and 17: on COCO train2017 (118k images, 7.4k steps of 16 per epoch) about 133k iterations
# with steps at 103.5k and 125.7k.
DEFAULTS = {
    **PAPER_DEFAULTS,
    "iters": 133_000,
    "lr_steps": (103_500, 125_700),
}

RECIPES = [
    Recipe(
        name="ms_rcnn",
        task="instance",
        paper=PAPER,
        model="segcli.recipes.nets.ms_rcnn:build_ms_rcnn",
        defaults=DEFAULTS,
        quick=QUICK,
        resize_options=rcnn_resize,
        pretrained_options=PRETRAINED,
        extra_metrics="segcli.recipes.nets.ms_rcnn_metrics:extra_metrics",
    ),
]
