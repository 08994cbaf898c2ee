"""Paired image/mask pipelines (albumentations) and per-sample seeding for exact resume."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

from segcli.data.elastic import CoarseGridElastic  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Padding with the mean colour makes padded pixels 0 after normalisation (as Caffe's crops did).
MEAN_PIXEL = tuple(round(255 * m) for m in IMAGENET_MEAN)


def semantic_train_transform(
    crop: int,
    scale_range: tuple[float, float],
    hflip: bool,
    ignore_index: int,
    elastic: bool = False,
) -> A.Compose:
    """Random scale, crop padded with the ignore index in the mask, elastic deformation of the
    crop (the training tile U-Net's 3x3 grid spans), flip, normalise."""
    low, high = scale_range
    steps = [
        A.RandomScale(scale_limit=(low - 1, high - 1), interpolation=cv2.INTER_LINEAR, p=1.0),
        A.PadIfNeeded(
            crop, crop, border_mode=cv2.BORDER_CONSTANT, fill=MEAN_PIXEL, fill_mask=ignore_index
        ),
        A.RandomCrop(crop, crop),
    ]
    if elastic:
        steps.append(CoarseGridElastic(grid=3, sigma=10.0))  # U-Net section 3.1
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose([*steps, A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()])


def eval_transform() -> A.Compose:
    """The whole image, normalised."""
    return A.Compose([A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()])


def denormalize(images: torch.Tensor) -> np.ndarray:
    """The uint8 RGB images [B,H,W,3] that eval_transform turned into `images` [B,3,H,W]
    (exact: normalisation is the only step, so rounding recovers every pixel)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    rgb = ((images.float() * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
    return rgb.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def seed_transform(pipeline: A.Compose, seed: int) -> None:
    """Give every step of `pipeline` its own stream derived from `seed`.

    albumentations' set_random_seed hands the same seed to every step, which would tie the
    flip decision to the scale factor; distinct child seeds keep them independent.
    """
    children = np.random.SeedSequence(seed).generate_state(len(pipeline.transforms) + 1)
    pipeline.set_random_seed(int(children[-1]))
    for step, child in zip(pipeline.transforms, children):
        step.set_random_seed(int(child))


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of dataset item `index` in `epoch`: independent of worker and rank."""
    return int(np.random.SeedSequence((seed, epoch, index)).generate_state(1)[0])
