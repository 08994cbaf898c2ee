"""Recognise a `--data` argument and open the matching dataset (a "source" of raw samples).

A source has `__len__`, `load(i) -> dict` (image uint8 [H,W,3], mask or instances, name),
`name(i)` and `class_names` (None when the dataset does not say).
"""

from __future__ import annotations

from pathlib import Path

from segcli.config import BUILTIN_DATA
from segcli.data.cityscapes import CityscapesDataset, is_cityscapes
from segcli.data.coco import ShapesInstances, is_coco_root, is_labelme_coco, open_coco
from segcli.data.folders import is_image_mask_folder, is_voc, open_image_mask_folder, open_voc
from segcli.data.painted import PaintedMasks
from segcli.data.shapes import ShapesDataset
from segcli.data.via import is_via, open_via
from segcli.data.yolo import open_yolo, yolo_yaml
from segcli.errors import DataError

SHAPES_SEED = 0  # the built-in data is the same for every run, whatever the training seed

SEMANTIC_FORMATS = (
    "a VOC folder (JPEGImages/, SegmentationClass/), images/ + masks/, a Cityscapes root"
)
INSTANCE_FORMATS = (
    "a COCO root (annotations/instances_<split>*.json), a convert-labelme folder, VIA "
    "(train/ and val/ with via_region_data.json, or one VIA .json file) or a YOLO "
    "segmentation data.yaml"
)


def dataset_root(data: str) -> Path:
    """The folder (or file) `--data` names; a missing one is one DataError line."""
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found")
    return root


def open_source(
    data: str,
    split: str,
    img_size: int = 96,
    shapes_count: int = 2000,
    task: str = "semantic",
    via_attribute: str | None = None,
):
    """The dataset named by `data` (a path, or `shapes`) for `split` ('train' or 'val').

    The task picks the reader: a convert-labelme folder holds both VOC masks (semantic) and
    COCO instances (instance); instance sources are described in segcli/data/coco.py, and a
    semantic recipe sees instance data through its class map (PaintedMasks).
    """
    if data == BUILTIN_DATA:
        shapes = ShapesInstances if task == "instance" else ShapesDataset
        return shapes(split, size=img_size, count=shapes_count, seed=SHAPES_SEED)
    root = dataset_root(data)
    if task == "semantic":
        if is_cityscapes(root):
            return CityscapesDataset(root, split)
        if is_voc(root):
            return open_voc(root, split)
        if is_image_mask_folder(root):
            return open_image_mask_folder(root, split)
    instances = open_instances(root, split, via_attribute)
    if instances is not None:
        return instances if task == "instance" else PaintedMasks(instances)
    formats = (
        INSTANCE_FORMATS if task == "instance" else f"{SEMANTIC_FORMATS}, or {INSTANCE_FORMATS}"
    )
    raise DataError(f"{root}: not a dataset segcli reads; expected {formats}")


def open_instances(root: Path, split: str, via_attribute: str | None = None):
    """The instance source of `root` in any instance format, or None if it has none."""
    if is_labelme_coco(root) or is_coco_root(root):
        return open_coco(root, split)
    if is_via(root):
        return open_via(root, split, via_attribute)
    if yolo_yaml(root) is not None:
        return open_yolo(root, split)
    return None


def infer_num_classes(source, ignore_index: int) -> int:
    """1 + the largest label value in the source's masks (ignore excluded); reads every mask."""
    top = 0
    for index in range(len(source)):
        mask = source.load_mask(index)
        values = mask[mask != ignore_index]
        top = max(top, int(values.max()) if values.size else 0)
    return top + 1


def class_names_for(
    source, num_classes: int | None, ignore_index: int, binary: bool = False
) -> tuple[str, ...]:
    """Names for every class id: the dataset's own, else `class_<i>` for the given or found K
    (2 for binary 0/255 masks, whose 255 is the foreground, not the ignore index)."""
    names = getattr(source, "class_names", None)
    if names and (num_classes is None or num_classes == len(names)):
        return tuple(names)
    if num_classes is None:
        num_classes = 2 if binary else infer_num_classes(source, ignore_index)
    return tuple(names[i] if names and i < len(names) else f"class_{i}" for i in range(num_classes))
