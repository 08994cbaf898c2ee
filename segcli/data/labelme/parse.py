"""Read one labelme JSON and check every shape, the way labelme v7.1.0's loader does.

File-level problems (malformed JSON, no `shapes` list) raise DataError naming the file;
shape-level problems are collected per shape so `--skip-invalid` can drop just that shape.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segcli.errors import DataError
from segcli.io import read_json

# Point counts per shape type (labelme examples/utils.py shape_to_mask asserts them); a mask
# shape's two points are its bbox.
MASK = "mask"
POINT_COUNTS = {"rectangle": 2, "circle": 2, "line": 2, "point": 1, "oriented_rectangle": 4,
                MASK: 2}  # fmt: skip
MIN_POINTS = {"polygon": 3, "linestrip": 2}
SHAPE_TYPES = (*POINT_COUNTS, *MIN_POINTS)


@dataclass(frozen=True)
class Shape:
    """One drawable shape; `points` are (x, y) = (column, row) floats in image pixels."""

    index: int
    label: str
    shape_type: str
    points: tuple[tuple[float, float], ...]
    group_id: int | None
    patch: np.ndarray | None = None  # mask shapes: bool [h, w], the bbox-local patch


@dataclass(frozen=True)
class ShapeProblem:
    index: int
    label: str
    reason: str


@dataclass
class LabelmeFile:
    record: dict  # the JSON object (imagePath, imageData, imageHeight, imageWidth, ...)
    shapes: list[Shape] = field(default_factory=list)
    problems: list[ShapeProblem] = field(default_factory=list)


class ShapeError(ValueError):
    """A shape that labelme could not rasterise; the message says why."""


def read_labelme(path: Path) -> LabelmeFile:
    """Parse `path`; DataError for a file-level problem, ShapeProblem for a bad shape."""
    record = read_json(path, "labelme file")
    if not isinstance(record, dict) or not isinstance(record.get("shapes"), list):
        raise DataError(f"{path}: not a labelme file (no 'shapes' list)")
    parsed = LabelmeFile(record)
    for index, raw in enumerate(record["shapes"]):
        try:
            parsed.shapes.append(parse_shape(index, raw))
        except ShapeError as exc:
            label = raw.get("label") if isinstance(raw, dict) else None
            parsed.problems.append(
                ShapeProblem(index, label if isinstance(label, str) else "", str(exc))
            )
    return parsed


def parse_shape(index: int, raw) -> Shape:
    if not isinstance(raw, dict):
        raise ShapeError("not a JSON object")
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ShapeError("missing or empty label")
    # A missing or null shape_type is a polygon (labelme's loader does the same).
    shape_type = raw.get("shape_type") or "polygon"
    if shape_type not in SHAPE_TYPES:
        raise ShapeError(
            f"unsupported shape type {shape_type!r} (labelme draws {', '.join(SHAPE_TYPES)})"
        )
    group_id = raw.get("group_id")
    if group_id is not None and (not isinstance(group_id, int) or isinstance(group_id, bool)):
        raise ShapeError(f"group_id {group_id!r} is not an integer or null")
    points = _points(raw.get("points"), shape_type)
    patch = None
    if shape_type == MASK:
        patch = decode_patch(raw.get("mask"), points)
    elif raw.get("mask") is not None:  # labelme v7's loader rejects this too
        raise ShapeError(f"a 'mask' field on a {shape_type} shape")
    return Shape(index, label, shape_type, points, group_id, patch)


def _points(raw, shape_type: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list) or not all(_is_xy(p) for p in raw):
        raise ShapeError("points must be a list of [x, y] numbers")
    try:
        points = tuple((float(p[0]), float(p[1])) for p in raw)
    except OverflowError:  # an integer of hundreds of digits
        raise ShapeError("points hold a number too large for a coordinate") from None
    if not all(math.isfinite(v) for p in points for v in p):
        raise ShapeError("points hold NaN or infinity")
    exact, least = POINT_COUNTS.get(shape_type), MIN_POINTS.get(shape_type)
    if exact is not None and len(points) != exact:
        raise ShapeError(f"{shape_type} with {len(points)} points (needs exactly {exact})")
    if least is not None and len(points) < least:
        raise ShapeError(f"{shape_type} with {len(points)} points (needs at least {least})")
    return points


def _is_xy(point) -> bool:
    return (
        isinstance(point, list | tuple)
        and len(point) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
    )


def decode_patch(text, corners: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The `mask` field: a base64 PNG of the bbox-local patch; any nonzero value is foreground.

    With integer corners the bbox (both ends inclusive) is the extent pasted, so the patch
    must cover it (labelme would fail to broadcast a smaller one).
    """
    if not isinstance(text, str):
        raise ShapeError("mask shape without a base64 'mask' PNG")
    try:
        with Image.open(io.BytesIO(base64.b64decode(text))) as image:
            patch = np.asarray(image)
    except Image.DecompressionBombError:
        raise ShapeError("the 'mask' patch is too large to decode") from None
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise ShapeError("the 'mask' field is not a base64-encoded image") from None
    if patch.ndim != 2 or patch.size == 0:
        raise ShapeError(f"the 'mask' patch is not a single-channel image (shape {patch.shape})")
    need_h, need_w = patch_extent(corners, patch.shape)
    if patch.shape[0] < need_h or patch.shape[1] < need_w:
        (x1, y1), (x2, y2) = corners
        raise ShapeError(
            f"the 'mask' patch is {patch.shape[1]}x{patch.shape[0]} but its box "
            f"{[x1, y1]}-{[x2, y2]} is {need_w}x{need_h}"
        )
    return patch.astype(bool)


def patch_extent(
    corners: tuple[tuple[float, float], ...], patch_shape: tuple[int, ...]
) -> tuple[int, int]:
    """(height, width) of the image area a mask patch covers (labelme v7.1.0): with whole-number
    corners the bbox, both ends inclusive (a larger patch is cropped to it); with any fractional
    corner the patch's own size, since two independently rounded corners could resize it."""
    (x1, y1), (x2, y2) = corners
    if all(float(v).is_integer() for v in (x1, y1, x2, y2)):
        return int(y2 - y1) + 1, int(x2 - x1) + 1
    return patch_shape[0], patch_shape[1]
