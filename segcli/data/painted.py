"""Instance annotations (COCO, VIA, YOLO) seen as semantic masks, so semantic recipes train on
them: each pixel takes the label of the last instance covering it, background 0."""

from __future__ import annotations

import numpy as np

from segcli.errors import DataError


class PaintedMasks:
    """A semantic source over an instance source: `load(i)` -> dict(image, mask uint8 [H,W],
    name, image_path, mask_path), with the instance source's class names (background first)."""

    def __init__(self, instances):
        if len(instances.class_names) > 255:
            raise DataError(f"{len(instances.class_names)} classes do not fit an 8-bit mask")
        self.instances = instances
        self.class_names = tuple(instances.class_names)

    def __len__(self) -> int:
        return len(self.instances)

    def name(self, index: int) -> str:
        return self.instances.name(index)

    def load(self, index: int) -> dict:
        sample = self.instances.load(index)
        mask = np.zeros(sample["image"].shape[:2], np.uint8)
        for instance in sample["instances"]:  # in annotation order: later ones on top
            mask[instance["mask"]] = instance["label"]
        path = sample.get("image_path", sample["name"])
        return {**sample, "mask": mask, "image_path": path, "mask_path": path}

    def load_mask(self, index: int) -> np.ndarray:
        return self.load(index)["mask"]
