"""The files of a converted labelme folder, all written through segcli.io (atomic).

Per image: JPEGImages/<stem>.jpg, SegmentationClass/<stem>.png and SegmentationObject/<stem>.png
(8-bit palette PNGs, VOC colormap), and overlays in SegmentationClassVisualization/ and
SegmentationObjectVisualization/. Per folder: class_names.txt, annotations.json and
ImageSets/Segmentation/{train,val}.txt.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from segcli import io, viz
from segcli.data.labelme.classes import IGNORE_ID, Classes
from segcli.data.labelme.image import LabelmeImage
from segcli.data.labelme.paint import Painting

# labelme re-encodes every image at PIL's default quality 75; an upright RGB JPEG is copied
# byte for byte instead, and anything else is re-encoded with little loss.
JPEG_QUALITY = 95


def write_image_files(
    folder: Path, stem: str, image: LabelmeImage, painting: Painting, classes: Classes, viz_: bool
) -> None:
    jpeg = folder / "JPEGImages" / f"{stem}.jpg"
    if image.upright_jpeg:
        io.write_bytes(jpeg, image.data)
    else:
        viz.save_jpeg(jpeg, image.rgb, quality=JPEG_QUALITY)
    viz.save_label_png(folder / "SegmentationClass" / f"{stem}.png", painting.classes)
    viz.save_label_png(folder / "SegmentationObject" / f"{stem}.png", painting.objects)
    if viz_:
        _write_overlays(folder, stem, image, painting, classes)


def _write_overlays(
    folder: Path, stem: str, image: LabelmeImage, painting: Painting, classes: Classes
) -> None:
    class_names = {i: name for i, name in enumerate(classes.names) if i not in (0, IGNORE_ID)}
    shown = viz.overlay_with_legend(image.rgb, painting.classes, class_names)
    viz.save_jpeg(folder / "SegmentationClassVisualization" / f"{stem}.jpg", shown)
    object_names = {i.id: f"{i.id} {i.label}" for i in painting.instances}
    shown = viz.overlay_with_legend(image.rgb, painting.objects, object_names)
    viz.save_jpeg(folder / "SegmentationObjectVisualization" / f"{stem}.jpg", shown)


def split_stems(
    stems: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """A deterministic shuffle by `seed`; val gets round(fraction * n) images, never all of
    them, and at least one when the fraction is above 0 and there are two or more images (so
    a run can validate). A fraction of 0 puts every image in train."""
    order = sorted(stems)
    random.Random(seed).shuffle(order)
    n_val = round(val_fraction * len(order))
    if val_fraction > 0 and len(order) >= 2:
        n_val = min(max(n_val, 1), len(order) - 1)
    else:
        n_val = 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def write_folder_files(
    folder: Path, class_names: Sequence[str], coco: dict, train: list[str], val: list[str]
) -> None:
    io.write_text(folder / "class_names.txt", "\n".join(class_names) + "\n")
    io.write_json(folder / "annotations.json", coco, indent=None)
    sets = folder / "ImageSets" / "Segmentation"
    for name, stems in (("train", train), ("val", val)):
        io.write_text(sets / f"{name}.txt", "".join(f"{s}\n" for s in stems))
