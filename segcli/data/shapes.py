"""The built-in `shapes` data: squares, circles and triangles on random backgrounds.

Generated on the fly and deterministic in (seed, split, index), so nothing is downloaded or
stored. Each sample has a class map and one mask per shape (shapes never overlap).
"""

from __future__ import annotations

import cv2
import numpy as np

CLASS_NAMES = ("background", "square", "circle", "triangle")
_SPLIT_CODES = {"train": 1, "val": 2}


class ShapesDataset:
    """`load(i)` -> dict(image uint8 [S,S,3], mask uint8 [S,S], instances, name)."""

    class_names = CLASS_NAMES

    def __init__(self, split: str = "train", size: int = 96, count: int = 2000, seed: int = 0):
        if split not in _SPLIT_CODES:
            raise ValueError(f"shapes split must be train or val, got {split}")
        self.split, self.size, self.count, self.seed = split, size, count, seed

    def __len__(self) -> int:
        return self.count

    def name(self, index: int) -> str:
        return f"shapes_{self.split}_{index:05d}"

    def load(self, index: int) -> dict:
        if not 0 <= index < self.count:
            raise IndexError(index)
        rng = np.random.default_rng((self.seed, _SPLIT_CODES[self.split], index))
        image, background = _background(rng, self.size)
        mask = np.zeros((self.size, self.size), np.uint8)
        instances = []
        for _ in range(int(rng.integers(1, 5))):
            shape = _place_shape(rng, self.size, occupied=mask > 0)
            if shape is None:
                continue
            label, region = shape
            image[region] = _contrasting_colour(rng, background)
            mask[region] = label
            instances.append({"label": label, "mask": region})
        return {"image": image, "mask": mask, "instances": instances, "name": self.name(index)}


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A colour gradient with noise, so the model cannot threshold one colour."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    if rng.random() < 0.5:
        t = t.transpose(1, 0, 2)
    image = a * (1 - t) + b * t + rng.normal(0, 8, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8), (a + b) / 2


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    for _ in range(20):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - background).sum() > 120:
            break
    return colour.astype(np.uint8)


def _place_shape(rng: np.random.Generator, size: int, occupied: np.ndarray):
    """(label, bool mask) of a shape that does not touch `occupied`, or None after 10 tries."""
    for _ in range(10):
        label = int(rng.integers(1, len(CLASS_NAMES)))
        radius = rng.uniform(0.08, 0.22) * size
        cx, cy = rng.uniform(radius, size - radius, 2)
        canvas = np.zeros((size, size), np.uint8)
        if label == 2:
            cv2.circle(canvas, (round(cx), round(cy)), round(radius), 1, thickness=-1)
        else:
            corners = 4 if label == 1 else 3
            angles = rng.uniform(0, 2 * np.pi) + np.arange(corners) * 2 * np.pi / corners
            points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
            cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
        region = canvas.astype(bool)
        grown = cv2.dilate(canvas, np.ones((5, 5), np.uint8)).astype(bool)
        if region.sum() >= 16 and not (grown & occupied).any():
            return label, region
    return None
