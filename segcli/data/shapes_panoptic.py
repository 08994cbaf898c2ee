"""The built-in shapes data in panoptic form: the background is stuff, each shape a thing.

Categories follow `match_classes` for a semantic and an instance model both trained on shapes,
so fused predictions of the two shapes checkpoints and this ground truth share category ids:
square 1, circle 2, triangle 3 (ShapesInstances' ids), background 4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segcli import io
from segcli.data.coco import ShapesInstances
from segcli.data.panoptic import save_segment_png, segments_info, write_panoptic_json
from segcli.data.shapes import CLASS_NAMES
from segcli.data.sources import SHAPES_SEED
from segcli.ops.panoptic import PanopticClasses, match_classes


def shapes_classes() -> PanopticClasses:
    return match_classes(CLASS_NAMES, CLASS_NAMES, ShapesInstances.category_ids)


def panoptic_target(sample: dict, classes: PanopticClasses) -> tuple[np.ndarray, list[dict]]:
    """Segment ids [H, W] (int32) and segments_info of a ShapesInstances sample: shape i is
    segment i + 1, the background (class 0) the last segment."""
    ids = np.zeros(sample["mask"].shape, np.int32)
    segments = []
    for inst in sample["instances"]:
        segments.append({"id": len(segments) + 1, "category_id": classes.things[inst["label"]]})
        ids[inst["mask"]] = len(segments)
    background = sample["mask"] == 0
    if background.any():
        segments.append({"id": len(segments) + 1, "category_id": classes.stuff[0]})
        ids[background] = len(segments)
    return ids, segments_info(ids, segments)


def write_shapes_panoptic(
    json_path: Path, size: int = 96, count: int = 100, seed: int = SHAPES_SEED
) -> None:
    """The shapes val split's panoptic ground truth: `json_path` and, beside it, the PNG folder
    named as it without `.json` (COCO's layout). The folder is built aside and moved into
    place whole, then the json written; an existing folder is replaced."""
    source, classes = ShapesInstances("val", size=size, count=count, seed=seed), shapes_classes()
    images, annotations = [], []
    with io.staged_folder(json_path.with_suffix(""), replace=True) as folder:
        for index in range(len(source)):
            sample = source.load(index)
            ids, segments = panoptic_target(sample, classes)
            file_name = f"{sample['name']}.png"
            save_segment_png(folder / file_name, ids)
            image_id = source.image_id(index)
            images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
            annotations.append(
                {"image_id": image_id, "file_name": file_name, "segments_info": segments}
            )
    write_panoptic_json(json_path, images, annotations, classes.categories)
