"""COCO instances of converted labelme files (labelme2coco's rules, RLE for non-polygons).

Polygon instances keep labelme's raw float polygons, one per shape; any other shape type is
stored as the RLE of its rasterised mask (labelme2coco flattens a point or a line into an
invalid "polygon"). Area and bbox come from the union of the instance's rasterised shapes,
as in labelme2coco, so overlaps with later shapes are not subtracted.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycocotools import mask as mask_utils

from segcli.data.labelme.paint import Instance

POLYGON = "polygon"


def instance_annotations(instances: Sequence[Instance]) -> tuple[list[dict], list[str]]:
    """COCO annotations (no ids yet) of the class instances, and the labels of the instances
    left out because none of their pixels lies inside the image."""
    annotations, empty = [], []
    for instance in instances:
        if not instance.rles:  # background and __ignore__ shapes are not objects
            continue
        union = mask_utils.merge(instance.rles, intersect=False)
        area = float(mask_utils.area(union))
        if area == 0:  # an empty box would break detection training
            empty.append(instance.label)
            continue
        if all(kind == POLYGON for kind in instance.shape_types):
            segmentation = instance.polygons
        else:
            segmentation = {"size": union["size"], "counts": union["counts"].decode("ascii")}
        annotations.append(
            {
                "category_id": instance.class_id,
                "segmentation": segmentation,
                "area": area,
                "bbox": [float(v) for v in mask_utils.toBbox(union)],
                "iscrowd": 0,
            }
        )
    return annotations, empty


def coco_document(
    images: Sequence[tuple[str, int, int, list[dict]]], class_names: Sequence[str]
) -> dict:
    """The annotations.json object from (stem, height, width, annotations) per image.

    Ids start at 1 (labelme2coco starts at 0, but COCOeval treats a match with annotation
    id 0 as no match); categories are 1..K without the background.
    """
    coco_images, coco_annotations = [], []
    for image_id, (stem, height, width, found) in enumerate(images, start=1):
        coco_images.append(
            {
                "id": image_id,
                "file_name": f"JPEGImages/{stem}.jpg",
                "height": height,
                "width": width,
            }
        )
        for annotation in found:
            coco_annotations.append(
                {"id": len(coco_annotations) + 1, "image_id": image_id, **annotation}
            )
    categories = [
        {"id": i, "name": name, "supercategory": None}
        for i, name in enumerate(class_names)
        if i > 0
    ]
    return {
        "info": {"description": "converted by segcli convert-labelme"},
        "licenses": [],
        "type": "instances",
        "images": coco_images,
        "annotations": coco_annotations,
        "categories": categories,
    }
