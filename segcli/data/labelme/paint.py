"""Class and object maps of one labelme file (labelme v7.1.0 `shapes_to_label`), plus the
shapes of each instance for COCO.

Shapes are painted in file order, later ones on top; `__ignore__` paints 255 in the class map
and 0 in the object map. An instance is a (label, group_id) pair; a shape without group_id is
its own instance (labelme draws a fresh uuid1 for it), except that a suffixed label such as
`person1` names its instance. Instance ids are 1 + the order of first appearance, never
compacted, so an ignore shape still uses one up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from segcli.data.labelme.classes import IGNORE_ID, Classes
from segcli.data.labelme.parse import Shape
from segcli.data.labelme.rasterise import shape_mask

MAX_INSTANCES = 254  # object ids 1..254 in a uint8 PNG; VOC keeps 255 for "void"


def instance_key(label: str, group_id: int | None, index: int, classes: Classes) -> tuple:
    if group_id is not None:
        return (label, group_id)
    if classes.names_instance(label):  # `person1`: the suffix is the instance's name
        return (label, "suffix")
    return (label, "shape", index)


def instance_ids(keys: Sequence[tuple]) -> list[int]:
    """1 + the index of each key's first appearance, per shape."""
    first: dict[tuple, int] = {}
    return [first.setdefault(key, len(first) + 1) for key in keys]


@dataclass
class Instance:
    id: int
    label: str
    class_id: int  # IGNORE_ID for __ignore__ shapes
    shape_types: list[str] = field(default_factory=list)
    polygons: list[list[float]] = field(default_factory=list)  # flat [x1, y1, x2, y2, ...]
    rles: list[dict] = field(default_factory=list)  # one pycocotools RLE per shape


@dataclass
class Painting:
    classes: np.ndarray  # uint8 [H, W]: class ids, 255 = ignore
    objects: np.ndarray  # uint8 [H, W]: instance ids, 0 = background or ignore
    instances: list[Instance]


def paint(shapes: Sequence[Shape], classes: Classes, height: int, width: int) -> Painting:
    """Rasterise `shapes` (all with known labels) in order onto class and object maps."""
    keys = [instance_key(s.label, s.group_id, s.index, classes) for s in shapes]
    ids = instance_ids(keys)  # at most MAX_INSTANCES: make_plan leaves out larger files
    cls = np.zeros((height, width), np.uint8)
    obj = np.zeros((height, width), np.uint8)
    by_id: dict[int, Instance] = {}
    for shape, ins_id in zip(shapes, ids):
        class_id = classes.id_of(shape.label)
        mask = shape_mask(shape, height, width)
        cls[mask] = class_id
        obj[mask] = ins_id
        instance = by_id.setdefault(ins_id, Instance(ins_id, shape.label, class_id))
        instance.shape_types.append(shape.shape_type)
        instance.polygons.append([v for point in shape.points for v in point])
        if 0 < class_id < IGNORE_ID:  # only objects of a class go to COCO
            instance.rles.append(mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8)))
    obj[cls == IGNORE_ID] = 0  # labelme2voc: ignore regions belong to no object
    return Painting(cls, obj, list(by_id.values()))
