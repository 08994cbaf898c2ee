"""Cityscapes through torchvision's dataset class, with labelIds mapped to the 19 trainIds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli.data import IGNORE_INDEX
from segcli.errors import DataError


def is_cityscapes(root: Path) -> bool:
    return (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()


class CityscapesDataset:
    """`load(i)` -> dict(image, mask with trainIds and 255 for ignored labels, name)."""

    def __init__(self, root: Path, split: str):
        from torchvision.datasets import Cityscapes

        try:
            self.dataset = Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
        except RuntimeError as exc:  # torchvision's message for a broken layout
            raise DataError(f"{root}: not a Cityscapes root ({exc})") from None
        self.class_names = tuple(
            c.name
            for c in sorted(Cityscapes.classes, key=lambda c: c.train_id)
            if not c.ignore_in_eval
        )
        self.lookup = np.full(256, IGNORE_INDEX, np.uint8)
        for c in Cityscapes.classes:
            if 0 <= c.id < 256 and not c.ignore_in_eval:
                self.lookup[c.id] = c.train_id

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        return Path(self.dataset.images[index]).stem

    def load(self, index: int) -> dict:
        from segcli.data.images import read_image, read_mask

        image_path = self.dataset.images[index]
        mask_path = self.dataset.targets[index][0]
        label_ids = read_mask(mask_path)
        return {
            "image": read_image(image_path),
            "mask": self.lookup[np.clip(label_ids, 0, 255)],
            "name": self.name(index),
            "image_path": Path(image_path),
            "mask_path": Path(mask_path),
        }
