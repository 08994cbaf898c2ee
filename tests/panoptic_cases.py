"""Random panoptic ground truth and predictions for the PQ comparison tests and script.

Ground truth: a stuff layout (sky above, road below a random row), thing rectangles pasted on
top (person or car, some crowd: at most one crowd segment per category and image, as in COCO),
and VOID rectangles. Predictions: the same layout with every edge jittered, some things
dropped, relabelled or split, extra false positives, and optionally predicted VOID.
"""

from __future__ import annotations

import numpy as np

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 2, "name": "car", "isthing": 1},
    {"id": 3, "name": "sky", "isthing": 0},
    {"id": 4, "name": "road", "isthing": 0},
]
THINGS, STUFF = (1, 2), (3, 4)


class Painter:
    """A segment id map being painted, with its segments_info; ids are random and large, so
    that nothing depends on them being small or consecutive."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.ids, self.segments = rng, np.zeros((size, size), np.int64), []

    def paint(self, region, category: int, crowd: bool = False) -> None:
        seg_id = int(self.rng.integers(1, 256**3))
        while any(s["id"] == seg_id for s in self.segments):
            seg_id = int(self.rng.integers(1, 256**3))
        self.ids[region] = seg_id
        self.segments.append({"id": seg_id, "category_id": category, "iscrowd": int(crowd)})

    def finish(self) -> tuple[np.ndarray, list[dict]]:
        """Drop segments that later paint covered completely."""
        present = set(np.unique(self.ids).tolist())
        return self.ids, [s for s in self.segments if s["id"] in present]


def random_pair(rng: np.random.Generator, size=24, crowd=True, pred_void=True):
    """(gt ids, gt segments, pred ids, pred segments) of one random image."""
    gt, pred = Painter(rng, size), Painter(rng, size)
    horizon = int(rng.integers(4, size - 4))
    shifted = horizon + int(rng.integers(-2, 3))
    gt.paint(np.s_[:horizon], 3), gt.paint(np.s_[horizon:], 4)
    pred.paint(np.s_[:shifted], 3), pred.paint(np.s_[shifted:], 4)
    crowded = set()
    for _ in range(int(rng.integers(1, 6))):
        y, x = rng.integers(0, size - 4, 2)
        h, w = rng.integers(3, 10, 2)
        category = int(rng.choice(THINGS))
        is_crowd = crowd and category not in crowded and rng.random() < 0.25
        crowded |= {category} if is_crowd else set()
        gt.paint(np.s_[y : y + h, x : x + w], category, is_crowd)
        _predict_thing(rng, pred, (y, x, h, w), category)
    for _ in range(int(rng.integers(0, 3))):  # false positives
        y, x = rng.integers(0, size - 3, 2)
        pred.paint(np.s_[y : y + 4, x : x + 4], int(rng.choice(THINGS)))
    for painter in (gt, pred) if pred_void else (gt,):
        for _ in range(int(rng.integers(0, 3))):
            y, x = rng.integers(0, size - 3, 2)
            painter.ids[y : y + int(rng.integers(1, 6)), x : x + int(rng.integers(1, 6))] = 0
    return (*gt.finish(), *pred.finish())


def _predict_thing(rng, pred: Painter, box, category: int) -> None:
    """A prediction of one ground-truth rectangle: jittered, maybe dropped, relabelled or
    split in two."""
    if rng.random() < 0.15:
        return
    y, x, h, w = (max(0, int(v + rng.integers(-2, 3))) for v in box)
    if rng.random() < 0.15:
        category = THINGS[1 - THINGS.index(category)]
    if rng.random() < 0.2 and w >= 2:
        cut = x + int(rng.integers(1, w))
        pred.paint(np.s_[y : y + h, x:cut], category)
        pred.paint(np.s_[y : y + h, cut : x + w], category)
    else:
        pred.paint(np.s_[y : y + h, x : x + w], category)
