"""The words for label problems, shared by training's checks and `segcli check`.

Each function returns a problem description with its fix, or None.
"""

from __future__ import annotations

import numpy as np

from segcli.data import IGNORE_INDEX


def size_problem(mask_shape: tuple, image_shape: tuple) -> str | None:
    if tuple(mask_shape[:2]) == tuple(image_shape[:2]):
        return None
    return (
        f"mask is {mask_shape[1]}x{mask_shape[0]} but its image is "
        f"{image_shape[1]}x{image_shape[0]}"
    )


def out_of_range_problem(values: np.ndarray, num_classes: int, ignore_index: int) -> str | None:
    """`values`: the distinct values of one mask (or of many)."""
    bad = [int(v) for v in values if v >= num_classes and v != ignore_index]
    if not bad:
        return None
    return (
        f"label value {bad[0]} >= num_classes {num_classes} (not the ignore index "
        f"{ignore_index}); fix the mask, raise --set num_classes, or --set ignore_index={bad[0]}"
    )


def binary_problem(values: np.ndarray, ignore_index: int) -> str | None:
    """0/255 masks read with ignore index 255 would ignore every foreground pixel."""
    present = {int(v) for v in values}
    if ignore_index == IGNORE_INDEX and present == {0, 255}:
        return (
            "mask holds only 0 and 255 (a binary mask): 255 is the ignore index, so every "
            "foreground pixel would be ignored; fix: --set binary=true"
        )
    return None


def scaled_ids_problem(values: np.ndarray, num_classes: int, ignore_index: int) -> str | None:
    """Grey masks saved as evenly spaced intensities (0, 85, 170, ...) instead of ids."""
    present = sorted(int(v) for v in values if v > 0 and v != ignore_index)
    if len(present) < 2 or present[-1] < num_classes:
        return None
    step = present[0]
    if step > 1 and all(v % step == 0 for v in present):
        return (
            f"mask values {present[:4]} are multiples of {step}: they look like scaled "
            f"class ids; divide the masks by {step} (or convert the palette to ids)"
        )
    return None


def binary_ids(mask):
    """A 0/255 binary mask as class ids: 0 background, 1 foreground (values above 127)."""
    return (mask > 127).astype("uint8")
