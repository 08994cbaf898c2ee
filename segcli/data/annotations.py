"""Polygon and shape annotations (VIA, YOLO) gathered into an in-memory COCO instances
document, so every instance format trains through the one COCO source (segcli/data/coco.py).

Points may lie a little outside the image (a click past the border): up to TOLERANCE of the
image's side (at least MIN_TOLERANCE_PX) they are clipped onto it; further out they are an
error naming the file and the region.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from segcli.data.coco import encode_masks
from segcli.data.images import image_size
from segcli.errors import DataError

TOLERANCE = 0.01  # of the image's width (x) or height (y)
MIN_TOLERANCE_PX = 2.0


class CocoBuilder:
    """Images and their instances, added one by one, as a COCO document (ids from 1)."""

    def __init__(self, class_names: list[str]):
        self.class_names = list(class_names)  # without background; category id = index + 1
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add_image(self, path: Path, file_name: str, source: str) -> tuple[int, int, int]:
        """(image id, height, width) of the image at `path` (which the annotation file
        `source` names `file_name`), read from its header."""
        if not path.is_file():
            raise DataError(f"{source}: image '{file_name}' not found ({path})")
        height, width = image_size(path)
        image_id = len(self.images) + 1
        self.images.append(
            {"id": image_id, "file_name": file_name, "height": height, "width": width}
        )
        return image_id, height, width

    def category(self, name: str, where: str) -> int:
        if name not in self.class_names:
            known = ", ".join(self.class_names)
            raise DataError(f"{where}: label '{name}' is not in the class list ({known})")
        return self.class_names.index(name) + 1

    def add_polygon(self, image_id: int, points: np.ndarray, category: int, where: str) -> None:
        """A polygon of points [N, 2] (x, y pixels), clipped within the tolerance."""
        if len(points) < 3:
            raise DataError(f"{where}: a polygon needs 3 or more points, got {len(points)}")
        entry = self.images[image_id - 1]
        xy = clip_points(points, entry["height"], entry["width"], where)
        rle = mask_utils.merge(mask_utils.frPyObjects([xy.ravel().tolist()], *_hw(entry)))
        self._add(image_id, [xy.ravel().tolist()], rle, category)

    def add_mask(self, image_id: int, mask: np.ndarray, category: int) -> None:
        """A rasterised shape (circle, ellipse): bool [H, W], as a compressed RLE."""
        if mask.any():
            (rle,) = encode_masks(mask[None])
            self._add(image_id, rle, mask_utils.encode(np.asfortranarray(mask, np.uint8)), category)

    def _add(self, image_id: int, segmentation, rle: dict, category: int) -> None:
        area = float(mask_utils.area(rle))
        if area == 0:  # a degenerate polygon covers no pixel: nothing to learn from
            return
        self.annotations.append(
            {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": category,
                "segmentation": segmentation,
                "area": area,
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
            }
        )

    def document(self) -> dict:
        categories = [{"id": i, "name": n} for i, n in enumerate(self.class_names, start=1)]
        return {"images": self.images, "annotations": self.annotations, "categories": categories}


def _hw(entry: dict) -> tuple[int, int]:
    return entry["height"], entry["width"]


def clip_points(points: np.ndarray, height: int, width: int, where: str) -> np.ndarray:
    """points [N, 2] (x, y) clipped onto the image; one further out than the tolerance is an
    error naming it."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise DataError(f"{where}: a point is not a finite number")
    size = np.array([width, height], dtype=np.float64)
    slack = np.maximum(size * TOLERANCE, MIN_TOLERANCE_PX)
    outside = (points < -slack) | (points > size + slack)
    if outside.any():
        x, y = points[outside.any(axis=1)][0]
        raise DataError(
            f"{where}: point ({x:g}, {y:g}) lies outside the {width}x{height} image "
            f"(more than {TOLERANCE:.0%} of its side)"
        )
    return np.clip(points, 0, size)
