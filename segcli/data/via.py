"""VGG Image Annotator (VIA, Dutta & Zisserman) 1.x and 2.x JSON as instance data.

Layouts: matterport's balloon layout `DIR/{train,val}/via_region_data.json` with the images
beside each file, or one VIA json given as `--data file.json` (its images beside it), split
by a hash of each file name (segcli.data.folders.hash_split, 10% val).

A file is a VIA 2.x project (`_via_img_metadata`, `_via_attributes`) or an export: one entry
per image with `filename` and `regions`, a dict (1.x) or a list (2.x). Shapes: polygon, rect,
circle, ellipse (as 64-gon outlines); polyline and point enclose no area and are refused.
The class of a region is its attribute `attribute` (default: the first region attribute the
file declares or uses); with no attributes at all, every region is one class named after the
dataset folder, as in the balloon sample. The class list, in order: `class_names.txt`
(background first) beside the splits, else the options a VIA 2.x project declares for the
attribute, else the values found, sorted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from segcli.data.annotations import CocoBuilder
from segcli.data.coco import CocoSource
from segcli.data.folders import hash_split, read_class_names
from segcli.errors import DataError
from segcli.io import read_json

VIA_FILE = "via_region_data.json"
ELLIPSE_VERTICES = 64


def is_via(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() == ".json" and _entries(read_json(root, "VIA file"), root, False)
    return (root / "train" / VIA_FILE).is_file()


def open_via(root: Path, split: str, attribute: str | None = None) -> CocoSource:
    """One split of a VIA dataset as a COCO source."""
    files = [root] if root.is_file() else [root / s / VIA_FILE for s in ("train", "val")]
    docs = {path: read_json(path, "VIA file") for path in files if path.is_file()}
    path = root if root.is_file() else root / split / VIA_FILE
    if path not in docs:
        raise DataError(f"{path}: no VIA file for the {split} split")
    dataset = root.parent if root.is_file() else root
    attribute = attribute or _first_attribute(docs)
    names = read_class_names(dataset)
    classes = (
        list(names[1:]) if names else _declared(docs, attribute) or _class_values(docs, attribute)
    ) or [dataset.name]
    builder = CocoBuilder(classes)
    entries = _entries(docs[path], path)
    if root.is_file():
        keep = hash_split([e["filename"] for e in entries], split)
        entries = [e for e, chosen in zip(entries, keep) if chosen]
    for entry in entries:
        _add_entry(builder, entry, path, attribute)
    return CocoSource(builder.document(), path.parent, path, names[0] if names else "background")


def _entries(doc, path: Path, strict: bool = True) -> list[dict]:
    """The per-image entries of a VIA project or export (False when not VIA and not strict)."""
    if isinstance(doc, dict) and isinstance(doc.get("_via_img_metadata"), dict):
        doc = doc["_via_img_metadata"]
    ok = isinstance(doc, dict) and all(
        isinstance(e, dict) and "filename" in e and "regions" in e for e in doc.values()
    )
    if not ok or not doc:
        if not strict:
            return []
        raise DataError(f"{path}: not a VIA file (no image entries with filename and regions)")
    return list(doc.values())


def _regions(entry: dict, path: Path) -> list[dict]:
    regions = entry["regions"]
    if isinstance(regions, dict):  # VIA 1.x: {"0": region, "1": region, ...}
        regions = list(regions.values())
    if not isinstance(regions, list) or not all(isinstance(r, dict) for r in regions):
        raise DataError(f"{path}: image '{entry['filename']}': regions are not a list or dict")
    return regions


def _first_attribute(docs: dict) -> str | None:
    for doc in docs.values():
        declared = doc.get("_via_attributes", {}).get("region") if isinstance(doc, dict) else None
        if declared:
            return next(iter(declared))
    for path, doc in docs.items():
        for entry in _entries(doc, path):
            for region in _regions(entry, path):
                if region.get("region_attributes"):
                    return next(iter(region["region_attributes"]))
    return None


def _declared(docs: dict, attribute: str | None) -> list[str]:
    """The options a VIA 2.x project declares for the attribute (dropdown, radio), in order."""
    for doc in docs.values():
        region = doc.get("_via_attributes", {}).get("region", {}) if isinstance(doc, dict) else {}
        options = region.get(attribute, {}).get("options") if attribute else None
        if isinstance(options, dict) and options:
            return list(options)
    return []


def _class_values(docs: dict, attribute: str | None) -> list[str]:
    """Every class the files use, sorted (empty when regions carry no attribute)."""
    if attribute is None:
        return []
    found = set()
    for path, doc in docs.items():
        for entry in _entries(doc, path):
            for k, region in enumerate(_regions(entry, path)):
                found.add(_class_of(region, attribute, f"{path}: {_where(entry, k)}"))
    return sorted(found)


def _class_of(region: dict, attribute: str | None, where: str) -> str | None:
    if attribute is None:
        return None
    value = region.get("region_attributes", {}).get(attribute)
    if isinstance(value, dict):  # a checkbox attribute: {"option": true, ...}
        ticked = [k for k, v in value.items() if v]
        value = ticked[0] if len(ticked) == 1 else None
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: no single value of the region attribute '{attribute}'")
    return value.strip()


def _where(entry: dict, index: int) -> str:
    return f"image '{entry['filename']}' region {index}"


def _add_entry(builder: CocoBuilder, entry: dict, path: Path, attribute: str | None) -> None:
    filename = entry["filename"]
    image_id, _, _ = builder.add_image(path.parent / filename, filename, str(path))
    for k, region in enumerate(_regions(entry, path)):
        where = f"{path}: {_where(entry, k)}"
        name = _class_of(region, attribute, where)
        category = builder.category(name, where) if name else 1
        outline = _outline(region.get("shape_attributes", {}), where)
        builder.add_polygon(image_id, outline, category, where)


def _outline(shape: dict, where: str) -> np.ndarray:
    """The region's outline as points [N, 2] (x, y pixels)."""
    kind = shape.get("name")
    try:
        if kind == "polygon":
            return np.stack([shape["all_points_x"], shape["all_points_y"]], axis=1).astype(float)
        if kind == "rect":
            x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
            return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        if kind == "circle":
            return _ellipse(shape["cx"], shape["cy"], shape["r"], shape["r"], 0.0)
        if kind == "ellipse":
            rx, ry = shape["rx"], shape["ry"]
            return _ellipse(shape["cx"], shape["cy"], rx, ry, shape.get("theta", 0.0))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: {kind} without valid coordinates") from None
    if kind in ("polyline", "point"):
        raise DataError(f"{where}: a {kind} encloses no area, so it is no mask; draw a polygon")
    raise DataError(f"{where}: unknown shape {kind!r}")


def _ellipse(cx, cy, rx, ry, theta) -> np.ndarray:
    """A 64-gon on the ellipse centred at (cx, cy), radii rx, ry, turned by theta radians."""
    t = np.linspace(0, 2 * math.pi, ELLIPSE_VERTICES, endpoint=False)
    x, y = float(rx) * np.cos(t), float(ry) * np.sin(t)
    c, s = math.cos(float(theta)), math.sin(float(theta))
    return np.stack([float(cx) + c * x - s * y, float(cy) + s * x + c * y], axis=1)
