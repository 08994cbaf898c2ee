"""Semantic samples for the loader: checked, augmented with a per-sample seed, as tensors."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from segcli.data import IGNORE_INDEX
from segcli.data.images import check_mask
from segcli.data.labels import binary_ids
from segcli.data.transforms import seed_transform


class SemanticSamples(Dataset):
    """`dataset[i]` or `dataset[(i, seed)]` -> (image float [3,H,W], mask long [H,W]), or with
    `prepare_target` (a recipe's hook, run here in the loader workers) (image,
    prepare_target(mask, ignore_index))."""

    def __init__(
        self,
        source,
        transform,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        binary: bool = False,
        prepare_target=None,
    ):
        self.source, self.transform = source, transform
        self.num_classes, self.ignore_index, self.binary = num_classes, ignore_index, binary
        self.prepare_target = prepare_target

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.source.load(index)
        image, mask = sample["image"], sample["mask"]
        if self.binary:  # 0/255 masks: 255 is the foreground, not the ignore index
            mask = binary_ids(mask)
        check_mask(
            mask,
            image.shape,
            self.num_classes,
            self.ignore_index,
            sample.get("mask_path", sample["name"]),
        )
        if seed is not None:
            seed_transform(self.transform, seed)
        out = self.transform(image=image, mask=mask)
        mask = torch.as_tensor(out["mask"], dtype=torch.long)
        if self.prepare_target is not None:
            return out["image"], self.prepare_target(mask, self.ignore_index)
        return out["image"], mask
