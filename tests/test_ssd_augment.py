"""SSD's augmentation (YOLACT's default): masks, boxes and image stay aligned; the random crop
keeps the paper's IoU constraint; images without objects pass."""

import numpy as np
import pytest
import torch

from segcli.config import resolve_config
from segcli.data.instance import instance_train_samples
from segcli.data.ssd_augment import MIN_IOUS, PATCH_ASPECT, PATCH_SIDE, SSDRandomCrop
from segcli.recipe import get_recipe

from helpers import TINY_SHAPES, TINY_YOLACT_FLAGS

# Squares of distinct colours on black: every photometric step maps a colour to one colour (up
# to OpenCV's SIMD rounding: TOLERANCE), and expand, crop and flip move pixels without
# resampling, so after augmentation an instance's mask must be exactly the pixels of its colour.
COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40))
SQUARES = ((4, 6, 30, 26), (40, 8, 70, 40), (10, 44, 34, 76), (50, 50, 78, 70))  # x1 y1 x2 y2
TOLERANCE = 2  # grey levels


class Squares:
    """A source of one 80 x 88 image with the four SQUARES, or none (`empty`)."""

    def __init__(self, empty: bool = False):
        self.empty = empty

    def __len__(self) -> int:
        return 1

    def load(self, index: int) -> dict:
        image = np.zeros((80, 88, 3), np.uint8)
        instances = []
        for label, ((x1, y1, x2, y2), colour) in enumerate(zip(SQUARES, COLOURS), start=1):
            if self.empty:
                break
            image[y1:y2, x1:x2] = colour
            mask = np.zeros((80, 88), bool)
            mask[y1:y2, x1:x2] = True
            instances.append({"label": label, "mask": mask, "box": [x1, y1, x2, y2]})
        return {"image": image, "instances": instances, "image_id": 1}


def extent(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_masks_boxes_and_image_stay_aligned_over_many_draws():
    samples = instance_train_samples(Squares(), "ssd", (1.0, 1.0), hflip=True)
    sizes, counts = set(), []
    for seed in range(150):
        image, target = samples[(0, seed)]
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.int64)
        masks, boxes = target["masks"].numpy().astype(bool), target["boxes"].numpy()
        assert len(masks) == len(boxes) == len(target["labels"])
        assert masks.shape[1:] == image.shape[1:]
        for mask, box, label in zip(masks, boxes, target["labels"].tolist()):
            colour = np.median(pixels[mask], axis=0)
            same = (np.abs(pixels - colour) <= TOLERANCE).all(2)
            assert np.array_equal(same, mask), (seed, label)
            assert box.tolist() == pytest.approx(extent(mask), abs=1)
        sizes.add(image.shape[1:])
        counts.append(len(masks))
    # expand and crop change the size; the crop drops objects
    assert len(sizes) > 50 and min(counts) >= 1 and max(counts) == 4 and min(counts) < 4


def plain_iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("min_iou", [m for m in MIN_IOUS if m])
def test_crops_meet_the_iou_constraint(min_iou):
    """Every patch drawn for a minimum IoU overlaps some box at least that much, has the
    paper's side and aspect ranges and holds a box centre."""
    crop = SSDRandomCrop()
    h, w = 80, 88
    objects = (*SQUARES, (8, 8, 72, 64))  # a large one that IoU 0.9 can reach
    boxes = torch.tensor(objects, dtype=torch.float64)
    found = 0
    for seed in range(40):
        crop.set_random_seed(seed)
        patch = crop._patch(boxes, min_iou, h, w)
        if patch is None:
            continue
        found += 1
        x1, y1, x2, y2 = patch
        assert max(plain_iou(patch, b) for b in objects) >= min_iou
        assert PATCH_SIDE[0] * w - 1 <= x2 - x1 <= w and PATCH_SIDE[0] * h - 1 <= y2 - y1 <= h
        assert PATCH_ASPECT[0] - 0.05 <= (y2 - y1) / (x2 - x1) <= PATCH_ASPECT[1] + 0.05
        centres = [((a + c) / 2, (b + d) / 2) for a, b, c, d in objects]
        assert any(x1 < cx < x2 and y1 < cy < y2 for cx, cy in centres)
    assert found > 0


def test_image_without_objects():
    samples = instance_train_samples(Squares(empty=True), "ssd", (1.0, 1.0), hflip=True)
    for seed in range(20):
        image, target = samples[(0, seed)]
        assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, *image.shape[1:])
        assert target["labels"].shape == (0,)


def test_yolact_trains_with_ssd_on_data_and_flip_on_the_quick_profile():
    recipe = get_recipe("yolact")
    assert resolve_config(recipe, {"data": "coco_folder"}).augment == "ssd"
    assert resolve_config(recipe, {}).augment == "flip"  # the built-in shapes: quick profile
    assert resolve_config(get_recipe("mask_rcnn"), {"data": "coco_folder"}).augment == "flip"


@pytest.mark.slow
def test_train_with_ssd_augmentation_through_the_cli(cli, in_tmp):
    result = cli(
        "train", "yolact", "--iters", "2", *TINY_SHAPES, *TINY_YOLACT_FLAGS, "--set", "augment=ssd"
    )
    assert result.exit_code == 0, result.output
    assert "augment: ssd" in (in_tmp / "runs/yolact/1/config.yaml").read_text()
    bad = cli("train", "yolact", "--set", "augment=mosaic")
    assert bad.exit_code == 2 and "augment" in bad.output and "flip, ssd" in bad.output
