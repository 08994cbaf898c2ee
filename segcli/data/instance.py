"""Instance samples for the loader in torchvision's detection format, augmented with boxes and
masks kept consistent by albumentations, with a per-sample seed (exact resume); for
evaluation, the images alone with their image ids (the scores come from the source's COCO
ground truth, so no annotation is decoded).

Images stay at their size in [0, 1]: the detection models normalise and resize them to the
recipe's scale themselves (torchvision's GeneralizedRCNNTransform), at train and test time.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from segcli.data.ssd_augment import ssd_steps  # noqa: E402
from segcli.data.transforms import seed_transform  # noqa: E402


def instance_train_samples(source, augment: str, scale_range, hflip: bool) -> InstanceSamples:
    """The training samples of `source` under the `augment` pipeline: `flip`, the random
    rescale (`scale_range`) and flip (`hflip`) of the Mask R-CNN papers; `ssd`, SSD's
    augmentation as YOLACT trains with it (segcli.data.ssd_augment; mirror with `hflip`), its
    boxes recomputed from the cropped masks, as Detectron2's `recompute_boxes` does after a
    crop: a box cut to the patch is not the box of what is left of its object."""
    if augment == "ssd":
        return InstanceSamples(source, _compose(ssd_steps(hflip)), recompute_boxes=True)
    return InstanceSamples(source, instance_train_transform(scale_range, hflip))


def instance_train_transform(scale_range: tuple[float, float], hflip: bool) -> A.Compose:
    """Optional random rescale and horizontal flip of image, masks and boxes together."""
    steps = []
    low, high = scale_range
    if (low, high) != (1.0, 1.0):
        steps.append(
            A.RandomScale(scale_limit=(low - 1, high - 1), interpolation=cv2.INTER_LINEAR, p=1.0)
        )
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return _compose(steps)


def _compose(steps: list) -> A.Compose:
    """`steps` on image, masks and boxes, then the image as float [3, H, W] in [0, 1]."""
    # `keep` carries each box's instance index so the masks can follow dropped boxes
    boxes = A.BboxParams(
        format="pascal_voc", label_fields=["keep"], min_width=1, min_height=1, clip=True
    )
    with warnings.catch_warnings():  # without augmentation no step moves boxes: fine
        warnings.filterwarnings("ignore", "Got processor for bboxes")
        return A.Compose([*steps, A.ToFloat(max_value=255), ToTensorV2()], bbox_params=boxes)


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> float [3, H, W] in [0, 1], as the detection models take it."""
    return torch.tensor(image).permute(2, 0, 1).float().div_(255)  # a copy: PIL's is read-only


class InstanceSamples(Dataset):
    """`dataset[i]` or `dataset[(i, seed)]` -> (image float [3,H,W] in [0,1], target dict:
    boxes float [N,4] xyxy pixels, labels int64 [N] in 1..K, masks uint8 [N,H,W], image_id).
    `recompute_boxes`: the boxes are the extents of the transformed masks."""

    def __init__(self, source, transform: A.Compose, recompute_boxes: bool = False):
        self.source, self.transform = source, transform
        self.recompute_boxes = recompute_boxes

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.source.load(index)
        image, instances = sample["image"], sample["instances"]
        if seed is not None:
            seed_transform(self.transform, seed)
        boxes = [i["box"] for i in instances]
        inputs = {
            "image": image,
            "bboxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
            "keep": list(range(len(instances))),
        }
        if instances:  # albumentations cannot stack an empty list of masks
            inputs["masks"] = np.stack([i["mask"] for i in instances]).astype(np.uint8)
        out = self.transform(**inputs)
        labels = np.array([i["label"] for i in instances], dtype=np.int64)
        target = _target(out, labels, sample["image_id"])
        if self.recompute_boxes:
            target["boxes"] = mask_boxes(target["masks"])
        return out["image"], target


class InstanceImages(Dataset):
    """`dataset[i]` -> (image float [3,H,W] in [0,1], {"image_id": int}): what evaluation
    needs, read with the source's `load_image` (no annotation decoded)."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image = image_tensor(self.source.load_image(index))
        return image, {"image_id": int(self.source.image_id(index))}


def _target(out: dict, labels: np.ndarray, image_id: int) -> dict:
    """Boxes that survived the transform with their masks and labels; an instance whose mask
    left the image (or whose box shrank under a pixel) is dropped."""
    h, w = out["image"].shape[-2:]
    kept = np.array([int(k) for k in out["keep"]], dtype=np.int64)
    masks = np.asarray(out["masks"])[kept] if len(kept) else np.zeros((0, h, w), np.uint8)
    boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    alive = masks.any(axis=(1, 2))
    return {
        "boxes": torch.from_numpy(boxes[alive]),
        "labels": torch.from_numpy(labels[kept][alive]),
        "masks": torch.from_numpy(np.ascontiguousarray(masks[alive])),
        "image_id": int(image_id),
    }


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """The extents [N, 4] xyxy (x2, y2 exclusive, as segcli's source boxes) of non-empty masks
    [N, H, W], from numpy's `any` along each axis (torchvision's masks_to_boxes is several
    times slower on a loader's CPU tensors)."""
    m = masks.numpy().astype(bool, copy=False)
    rows, cols = m.any(2), m.any(1)  # [N, H], [N, W]
    x1, y1 = cols.argmax(1), rows.argmax(1)
    x2, y2 = m.shape[2] - cols[:, ::-1].argmax(1), m.shape[1] - rows[:, ::-1].argmax(1)
    return torch.from_numpy(np.stack([x1, y1, x2, y2], 1).astype(np.float32).reshape(-1, 4))


def collate(batch: list) -> tuple[list, list]:
    """Images of different sizes stay a list (the models batch them after resizing)."""
    images, targets = zip(*batch)
    return list(images), list(targets)
