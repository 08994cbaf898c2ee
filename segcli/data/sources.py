"""Recognise a `--data` argument and open the matching dataset (a "source" of raw samples).

A source has `__len__`, `load(i) -> dict` (image uint8 [H,W,3], mask or instances, name),
`name(i)` and `class_names` (None when the dataset does not say).
"""

from __future__ import annotations

from pathlib import Path

from segcli.config import BUILTIN_DATA
from segcli.data.cityscapes import CityscapesDataset, is_cityscapes
from segcli.data.coco import ShapesInstances, open_coco
from segcli.data.folders import is_image_mask_folder, is_voc, open_image_mask_folder, open_voc
from segcli.data.shapes import ShapesDataset
from segcli.errors import DataError

SHAPES_SEED = 0  # the built-in data is the same for every run, whatever the training seed

FORMATS = "a VOC folder (JPEGImages/, SegmentationClass/), images/ + masks/, or a Cityscapes root"


def open_source(
    data: str, split: str, img_size: int = 96, shapes_count: int = 2000, task: str = "semantic"
):
    """The dataset named by `data` (a path, or `shapes`) for `split` ('train' or 'val').

    The task picks the reader: a convert-labelme folder holds both VOC masks (semantic) and
    COCO instances (instance); instance sources are described in segcli/data/coco.py.
    """
    if data == BUILTIN_DATA:
        shapes = ShapesInstances if task == "instance" else ShapesDataset
        return shapes(split, size=img_size, count=shapes_count, seed=SHAPES_SEED)
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found")
    if task == "instance":
        return open_coco(root, split)
    if is_cityscapes(root):
        return CityscapesDataset(root, split)
    if is_voc(root):
        return open_voc(root, split)
    if is_image_mask_folder(root):
        return open_image_mask_folder(root, split)
    raise DataError(f"{root}: not a dataset segcli reads; expected {FORMATS}")


def infer_num_classes(source, ignore_index: int) -> int:
    """1 + the largest label value in the source's masks (ignore excluded); reads every mask."""
    top = 0
    for index in range(len(source)):
        mask = source.load_mask(index)
        values = mask[mask != ignore_index]
        top = max(top, int(values.max()) if values.size else 0)
    return top + 1


def class_names_for(source, num_classes: int | None, ignore_index: int) -> tuple[str, ...]:
    """Names for every class id: the dataset's own, else `class_<i>` for the given or found K."""
    names = getattr(source, "class_names", None)
    if names and (num_classes is None or num_classes == len(names)):
        return tuple(names)
    if num_classes is None:
        num_classes = infer_num_classes(source, ignore_index)
    return tuple(names[i] if names and i < len(names) else f"class_{i}" for i in range(num_classes))
