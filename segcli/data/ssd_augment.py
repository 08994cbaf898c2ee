"""SSD's training augmentation for instances (image, masks and boxes together), as YOLACT
trains with it (arXiv:1904.02689 section 6.4; the reference's SSDAugmentation): photometric
distortion, expand (zoom out), random sample crop with IoU constraints, mirror.

albumentations supplies the photometric steps, the padding and the cropping; the two random
draws SSD defines (the expand canvas, the IoU-constrained patch) are the paper's own and are
written here as albumentations transforms, so the instances' masks and boxes follow them.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.augmentations.crops.transforms import BaseCrop  # noqa: E402
from albumentations.core.bbox_utils import denormalize_bboxes  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402

from segcli.data.transforms import MEAN_PIXEL  # noqa: E402

# SSD section 2.2 "Data augmentation": a patch's minimum IoU with an object; None keeps the
# whole image, 0 takes any patch. YOLACT's reference lists 0.1, 0.3, 0.7, 0.9 and leaves the
# check a no-op (its comment: fixing it halved mAP early in training); segcli follows the paper.
MIN_IOUS = (None, 0.1, 0.3, 0.5, 0.7, 0.9, 0.0)
PATCH_SIDE = (0.3, 1.0)  # of the image's side, as SSD's Caffe sampler and the reference
PATCH_ASPECT = (0.5, 2.0)  # height / width
TRIALS = 50  # patches drawn per chosen IoU before drawing another option (the reference's)
ROUNDS = 20  # options drawn before keeping the whole image (the reference loops until done)


def photometric_distortion() -> list[A.BasicTransform]:
    """The reference's PhotometricDistort, each step with probability 1/2: brightness +-32,
    contrast (the pixels times [0.5, 1.5]), saturation x [0.5, 1.5], hue +-18 degrees. The
    reference applies the contrast before or after the HSV steps at random; a product of the
    pixels keeps hue and saturation, so the order matters only where pixels saturate."""
    return [
        A.RandomBrightnessContrast(brightness_limit=32 / 255, contrast_limit=0, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=0.5, p=0.5),
        # albumentations' saturation blends with the grey image (torchvision's rule) rather than
        # scaling the HSV saturation channel: the same range, a close effect
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(0.5, 1.5), hue=0, p=0.5),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=0.05, p=0.5),
    ]


class Expand(A.Pad):
    """SSD's zoom out (arXiv:1512.02325 section 3.6, the reference's Expand): with probability
    p the image lands at a random place on a canvas `ratio` times its size, ratio uniform in
    [1, max_ratio], filled with the mean pixel (masks with 0)."""

    def __init__(self, max_ratio: float = 4.0, p: float = 0.5):
        super().__init__(padding=0, fill=MEAN_PIXEL, fill_mask=0, p=p)
        self.max_ratio = max_ratio

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        ratio = self.py_random.uniform(1.0, self.max_ratio)
        left = int(self.py_random.uniform(0, w * ratio - w))
        top = int(self.py_random.uniform(0, h * ratio - h))
        return {
            "pad_left": left,
            "pad_top": top,
            "pad_right": int(w * ratio) - w - left,
            "pad_bottom": int(h * ratio) - h - top,
        }


class SSDRandomCrop(BaseCrop):
    """SSD's random sample crop (arXiv:1512.02325 section 2.2): draw a MIN_IOUS option, then up
    to TRIALS patches of PATCH_SIDE sides and PATCH_ASPECT aspect; a patch is taken when its IoU
    with some object box reaches the option's minimum and some box's centre lies inside it. The
    boxes whose centre lies outside are dropped (their masks follow them out); the others are
    cut to the patch. An image without boxes stays whole."""

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = params["shape"][:2]
        whole = {"crop_coords": (0, 0, w, h)}
        boxes = np.asarray(data.get("bboxes", np.zeros((0, 4))))[:, :4]
        if len(boxes) == 0:
            return whole
        boxes = torch.as_tensor(denormalize_bboxes(boxes, (h, w)), dtype=torch.float64)
        for _ in range(ROUNDS):
            min_iou = self.py_random.choice(MIN_IOUS)
            if min_iou is None:
                return whole
            patch = self._patch(boxes, min_iou, h, w)
            if patch is not None:
                return {"crop_coords": patch}
        return whole

    def _patch(self, boxes: torch.Tensor, min_iou: float, h: int, w: int):
        """The first of TRIALS random integer patches (x1, y1, x2, y2) that meets `min_iou`
        for `boxes` [N, 4] and holds a box centre, or None (drawn at once: one IoU call)."""
        sides = self.random_generator.uniform(*PATCH_SIDE, size=(TRIALS, 2)) * (w, h)
        corners = self.random_generator.uniform(size=(TRIALS, 2)) * ((w, h) - sides)
        patches = torch.as_tensor(np.hstack([corners, corners + sides]).astype(np.int64))
        aspect = torch.as_tensor(sides[:, 1] / sides[:, 0])
        ok = (aspect >= PATCH_ASPECT[0]) & (aspect <= PATCH_ASPECT[1])
        ok &= box_iou(patches.double(), boxes).amax(1) >= min_iou
        ok &= centres_inside(centres(boxes), patches).any(1)
        found = torch.nonzero(ok)
        return tuple(patches[found[0, 0]].tolist()) if len(found) else None

    def apply_to_bboxes(self, bboxes: np.ndarray, crop_coords, **params) -> np.ndarray:
        absolute = torch.as_tensor(denormalize_bboxes(bboxes[:, :4], params["shape"][:2]))
        inside = centres_inside(centres(absolute), torch.tensor([crop_coords]))[0]
        return super().apply_to_bboxes(bboxes[inside.numpy()], crop_coords, **params)


def centres(boxes: torch.Tensor) -> torch.Tensor:
    """Box centres [N, 2] of boxes [N, 4] xyxy."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def centres_inside(points: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """[T, N] bool: which points [N, 2] lie strictly inside which patches [T, 4] xyxy."""
    x, y = points[None].unbind(2)
    x1, y1, x2, y2 = patches[:, :, None].unbind(1)
    return (x > x1) & (x < x2) & (y > y1) & (y < y2)


def ssd_steps(hflip: bool) -> list[A.BasicTransform]:
    """The reference's SSDAugmentation up to its resize (YOLACT resizes inside the model)."""
    steps = [*photometric_distortion(), Expand(), SSDRandomCrop()]
    return steps + ([A.HorizontalFlip(p=0.5)] if hflip else [])
