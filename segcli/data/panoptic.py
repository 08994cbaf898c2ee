"""COCO panoptic format (cocodataset.org/#format-data, "Panoptic Segmentation"): a json whose
`annotations` give each image's `file_name` and `segments_info` (id, category_id, iscrowd, area,
bbox), `categories` with `isthing`, and a folder of RGB PNGs holding segment ids encoded as
R + 256 G + 256^2 B (0 = VOID). The folder is, by default, the json's path without `.json`
(panopticapi's `pq_compute`: panoptic_val2017.json beside panoptic_val2017/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segcli import io
from segcli.errors import DataError

MAX_ID = 256**3  # three 8-bit channels


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids [H, W] in [0, 256^3) as RGB uint8 [H, W, 3] (panopticapi's id2rgb)."""
    ids = np.asarray(ids, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= MAX_ID):
        raise ValueError(f"segment ids must be in [0, {MAX_ID})")
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """RGB [H, W, 3] to segment ids [H, W] (int64; panopticapi's rgb2id)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def read_segment_png(path: Path) -> np.ndarray:
    """Segment ids [H, W] (int64) of a COCO panoptic PNG; palette and RGBA files are read as
    their RGB colours, anything else (a grey or 16-bit PNG) is an error naming the file."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("RGB", "RGBA", "P"):
                raise DataError(
                    f"{path}: a {im.mode} image, expected an RGB PNG of segment ids "
                    "(R + 256 G + 256^2 B)"
                )
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: segment PNG not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode the PNG ({exc.__class__.__name__})") from None
    return rgb_to_ids(rgb)


def save_segment_png(path: Path, ids: np.ndarray) -> None:
    """Write segment ids [H, W] as a COCO panoptic PNG, atomically."""
    io.save_image(path, Image.fromarray(ids_to_rgb(ids), "RGB"))


def segments_info(ids: np.ndarray, segments: Sequence[Mapping]) -> list[dict]:
    """COCO segments_info of segment ids [H, W]: id, category_id, iscrowd (0), area and bbox
    ([x, y, width, height] of the segment's pixels) for each of `segments` (id, category_id)."""
    out = []
    for seg in segments:
        ys, xs = np.nonzero(ids == seg["id"])
        box = [0, 0, 0, 0]
        if len(xs):
            box = [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
        out.append(
            {"id": int(seg["id"]), "category_id": int(seg["category_id"]), "iscrowd": 0}
            | {"area": int(len(xs)), "bbox": box}
        )
    return out


@dataclass(frozen=True)
class PanopticFile:
    """A panoptic json, checked: annotations by image id, its categories, its PNG folder."""

    path: Path
    annotations: dict  # image_id -> {"image_id", "file_name", "segments_info"}
    categories: list[dict] | None  # None for results (pq_compute takes the ground truth's)
    folder: Path


def segment_folder(json_path: Path, folder: Path | None = None) -> Path:
    """The PNG folder of a panoptic json: `folder`, else COCO's folder beside it, named as it
    without `.json`."""
    found = folder if folder is not None else json_path.with_suffix("")
    if not found.is_dir():
        how = "" if folder is not None else f" (the folder named after {json_path.name})"
        raise DataError(f"{found}: segment PNG folder not found{how}")
    return found


def read_panoptic_json(path: Path, folder: Path | None = None, gt: bool = True) -> PanopticFile:
    """A COCO panoptic json, with each entry checked; `gt` requires `categories`."""
    doc = io.read_json(path, "COCO panoptic file")
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise DataError(f"{path}: no 'annotations' list (not a COCO panoptic file)")
    categories = known = None  # a results file's categories are the ground truth's
    if gt:
        categories = doc.get("categories")
        if not isinstance(categories, list) or not categories:
            raise DataError(f"{path}: no 'categories' list (a COCO panoptic file names them)")
        _check_categories(categories, path)
        known = {c["id"] for c in categories}
    annotations = {}
    for index, ann in enumerate(doc["annotations"]):
        problem = _annotation_problem(ann, known)
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        where = f"annotation of image {image_id}" if image_id is not None else f"annotation {index}"
        if problem is None and image_id in annotations:
            problem = "repeats an image_id"
        if problem:
            raise DataError(f"{path}: {where} {problem}")
        annotations[image_id] = ann
    return PanopticFile(path, annotations, categories, segment_folder(path, folder))


def _check_categories(categories: list, path: Path) -> None:
    seen = set()
    for cat in categories:
        if not (isinstance(cat, dict) and _is_int(cat.get("id")) and "isthing" in cat):
            raise DataError(f"{path}: a category lacks an integer 'id' or 'isthing'")
        if cat["isthing"] not in (0, 1):
            raise DataError(f"{path}: category {cat['id']}: isthing must be 0 or 1")
        if cat["id"] in seen:
            raise DataError(f"{path}: category id {cat['id']} is listed twice")
        seen.add(cat["id"])


def _annotation_problem(ann, categories: set | None) -> str | None:
    """What is wrong with one annotation (after "annotation of image N"), or None."""
    if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int | str):
        return "is not an object with an image_id"
    if not isinstance(ann.get("file_name"), str) or not isinstance(ann.get("segments_info"), list):
        return "lacks a file_name or a segments_info list"
    for seg in ann["segments_info"]:
        if not (isinstance(seg, dict) and _is_int(seg.get("id"))):
            return "has a segment without an integer id"
        if not 0 < seg["id"] < MAX_ID:
            return f"has segment id {seg['id']}, outside 1..{MAX_ID - 1} (0 is VOID)"
        if not _is_int(seg.get("category_id")):
            return f"has segment {seg['id']} without an integer category_id"
        if categories is not None and seg["category_id"] not in categories:
            return f"has segment {seg['id']} of unknown category_id {seg['category_id']}"
        if seg.get("iscrowd", 0) not in (0, 1):
            return f"has segment {seg['id']} whose iscrowd is not 0 or 1"
    return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pair_annotations(gt: PanopticFile, pred: PanopticFile) -> list[tuple[dict, dict]]:
    """(gt, pred) annotations paired by image_id, in the ground truth's order; an image on one
    side only, or a prediction of a category the ground truth does not list, is an error."""
    missing = [i for i in gt.annotations if i not in pred.annotations]
    if missing:
        raise DataError(f"{pred.path}: no prediction for image {missing[0]} of {gt.path.name}")
    extra = [i for i in pred.annotations if i not in gt.annotations]
    if extra:
        raise DataError(f"{pred.path}: image {extra[0]} is not an image of {gt.path.name}")
    known = {c["id"] for c in gt.categories}
    for image_id, ann in pred.annotations.items():
        for seg in ann["segments_info"]:
            if seg["category_id"] not in known:
                raise DataError(
                    f"{pred.path}: image {image_id}: segment {seg['id']} has category_id "
                    f"{seg['category_id']}, not a category of {gt.path.name}"
                )
    return [(ann, pred.annotations[i]) for i, ann in gt.annotations.items()]


def write_panoptic_json(path: Path, images: list[dict], annotations: list[dict], categories):
    """A COCO panoptic json: `images` (id, file_name, height, width), `annotations` (image_id,
    file_name of the PNG, segments_info) and `categories` (id, name, isthing)."""
    doc = {"images": images, "annotations": annotations, "categories": list(categories)}
    io.write_json(path, doc, indent=None)
