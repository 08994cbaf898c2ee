"""Panoptic fusion of an instance model (things) and a semantic model (stuff): the heuristic of
Panoptic FPN (Kirillov et al., "Panoptic Feature Pyramid Networks", arXiv:1901.02446,
section 3, "Inference"; Kirillov et al., arXiv:1801.00868, section 7), as detectron2's
`combine_semantic_and_instance_outputs` (detectron2/modeling/meta_arch/panoptic_fpn.py) and
panopticapi's combine_semantic_and_instance_predictions.py implement it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# detectron2's defaults (MODEL.PANOPTIC_FPN.COMBINE): OVERLAP_THRESH, INSTANCES_CONFIDENCE_THRESH,
# STUFF_AREA_LIMIT (pixels, for COCO images of about 800 x 1333).
OVERLAP_THRESHOLD = 0.5
SCORE_THRESHOLD = 0.5
STUFF_AREA = 4096
# detectron2 fuses at the input image's own size, about 640 x 480 on COCO; stuff_area_for gives
# other images the same share of their area.
COCO_IMAGE_AREA = 640 * 480
MASK_THRESHOLD = 0.5  # mask probabilities become binary masks here, as in segcli infer


@dataclass(frozen=True)
class PanopticClasses:
    """How two models' classes become one list of panoptic categories."""

    things: dict[int, int]  # instance model label (1..K) -> panoptic category id
    stuff: dict[int, int]  # semantic model class index -> panoptic category id
    categories: tuple[dict, ...]  # COCO panoptic categories: id, name, isthing


def match_classes(
    semantic_names: Sequence[str],
    instance_names: Sequence[str],
    instance_category_ids: Sequence[int] | None = None,
    things: Mapping[str, str] | None = None,
) -> PanopticClasses:
    """The panoptic categories of a semantic model (classes 0..S-1) and an instance model
    (`instance_names` background first, labels 1..K with `instance_category_ids`, default
    1..K). `things` pairs semantic class names with instance class names; by default names
    that are equal. Paired semantic classes are left to the instance model (their pixels stay
    VOID where no instance covers them, as Panoptic FPN's "things" class); the other semantic
    classes are stuff, numbered after the largest thing category id."""
    labels = {name: label for label, name in enumerate(instance_names) if label > 0}
    ids = list(instance_category_ids or range(1, len(instance_names)))
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} category ids for {len(labels)} instance classes")
    pairs = dict(things) if things is not None else {n: n for n in semantic_names if n in labels}
    unknown = sorted(set(pairs) - set(semantic_names)) + sorted(set(pairs.values()) - set(labels))
    if unknown:
        raise ValueError(f"things: '{unknown[0]}' is not a class of its model")
    thing_map = {labels[n]: ids[labels[n] - 1] for n in labels}
    categories = [{"id": ids[label - 1], "name": n, "isthing": 1} for n, label in labels.items()]
    stuff_map = {}
    for index, name in enumerate(semantic_names):
        if name not in pairs:
            stuff_map[index] = max(ids, default=0) + 1 + len(stuff_map)
            categories.append({"id": stuff_map[index], "name": name, "isthing": 0})
    return PanopticClasses(thing_map, stuff_map, tuple(categories))


def stuff_area_for(height: int, width: int) -> int:
    """STUFF_AREA scaled to an image of `height` x `width` pixels (at least 1)."""
    return max(1, round(STUFF_AREA * height * width / COCO_IMAGE_AREA))


def fuse_panoptic(
    semantic: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray,
    classes: PanopticClasses,
    overlap_threshold: float = OVERLAP_THRESHOLD,
    score_threshold: float = SCORE_THRESHOLD,
    stuff_area: int = STUFF_AREA,
) -> tuple[np.ndarray, list[dict]]:
    """Segment ids [H, W] (int32, 0 = VOID) and segments_info of one image.

    `semantic`: class indices [H, W]; `scores`, `labels`: [N] detections; `masks`: [N, H, W]
    or [N, 1, H, W] (an instance model's output), binary, or probabilities binarised at
    MASK_THRESHOLD. Instances scoring at least
    `score_threshold`, highest score first (ties: lower index first), each take their free
    pixels, unless more than `overlap_threshold` of the mask is already taken. Then each stuff
    class takes its free pixels, unless fewer than `stuff_area` remain. Segment ids count up
    from 1; segments_info entries hold id, category_id, isthing, area and, for things, score
    and instance (the detection's index). Labels not in `classes.things` are skipped.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    masks = np.asarray(masks).reshape(len(scores), *semantic.shape)
    masks = masks if masks.dtype == bool else masks >= MASK_THRESHOLD
    ids = np.zeros(semantic.shape, np.int32)
    segments = []
    for index in np.argsort(-scores, kind="stable"):
        if scores[index] < score_threshold:
            break
        mask, category = masks[index], classes.things.get(int(labels[index]))
        area = int(mask.sum())
        if category is None or area == 0:
            continue
        free = mask & (ids == 0)
        if (area - int(free.sum())) / area > overlap_threshold:
            continue
        segments.append(
            {"id": len(segments) + 1, "category_id": category, "isthing": True}
            | {"area": int(free.sum()), "score": float(scores[index]), "instance": int(index)}
        )
        ids[free] = len(segments)
    _add_stuff(ids, segments, semantic, classes.stuff, stuff_area)
    return ids, segments


def _add_stuff(ids, segments: list, semantic: np.ndarray, stuff: Mapping[int, int], min_area):
    """Each stuff class of `semantic` on the pixels still free, in class order, when at least
    `min_area` of them remain (one segment per class)."""
    free = ids == 0
    counts = np.bincount(semantic[free].ravel(), minlength=max(stuff, default=0) + 1)
    for index, category in sorted(stuff.items()):
        if counts[index] == 0 or counts[index] < min_area:
            continue
        segments.append(
            {"id": len(segments) + 1, "category_id": category, "isthing": False}
            | {"area": int(counts[index])}
        )
        ids[free & (semantic == index)] = len(segments)
