"""labelme's rasterisation of one shape (v7.1.0 `shape_to_mask` and the mask-patch rule).

Shapes are drawn with PIL ImageDraw on a canvas of the whole image, as labelme does: Pillow
truncates coordinates toward zero and clips what falls outside, so drawing on a smaller
canvas or with another library would move boundary pixels.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from segcli.data.labelme.parse import MASK, Shape

LINE_WIDTH = 10  # labelme shape_to_mask default; its converters never change it
POINT_RADIUS = 5  # same: a point is a disc in an 11 px box


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the pixels labelme assigns to `shape`."""
    if shape.shape_type == MASK:
        return paste_patch(shape, height, width)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    xy = list(shape.points)
    kind = shape.shape_type
    if kind == "circle":  # points: centre, a point on the rim
        (cx, cy), (px, py) = xy
        r = math.hypot(cx - px, cy - py)
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    elif kind == "rectangle":  # corners sorted first (labelme >= 6.0), both inclusive
        (x0, y0), (x1, y1) = xy
        box = ((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)))
        draw.rectangle(box, outline=1, fill=1)
    elif kind == "line":
        draw.line(xy, fill=1, width=LINE_WIDTH)
    elif kind == "linestrip":  # rounded joints (labelme >= 7.0)
        draw.line(xy, fill=1, width=LINE_WIDTH, joint="curve")
    elif kind == "point":
        (cx, cy), r = xy[0], POINT_RADIUS
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    else:  # polygon, oriented_rectangle: filled with the boundary included
        draw.polygon(xy, outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)


def paste_patch(shape: Shape, height: int, width: int) -> np.ndarray:
    """A mask shape: its bbox-local patch placed at round(points[0]), clipped to the image.

    Integer bounds give the extent (both ends inclusive, a larger patch is cropped);
    fractional bounds use the patch's own size, so two independently rounded corners cannot
    resize it. numpy rounds half to even, as labelme does.
    """
    corners = np.asarray(shape.points)
    (x1, y1), (x2, y2) = corners.round().astype(int)
    if np.array_equal(corners, np.trunc(corners)):
        extent_h, extent_w = y2 - y1 + 1, x2 - x1 + 1
    else:
        extent_h, extent_w = shape.patch.shape
    out = np.zeros((height, width), bool)
    top, bottom = max(y1, 0), min(y1 + extent_h, height)
    left, right = max(x1, 0), min(x1 + extent_w, width)
    if top < bottom and left < right:
        out[top:bottom, left:right] = shape.patch[top - y1 : bottom - y1, left - x1 : right - x1]
    return out
