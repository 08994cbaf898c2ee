"""labelme's rasterisation of one shape (v7.1.0 `shape_to_mask` and the mask-patch rule).

Shapes are drawn with PIL ImageDraw on a canvas of the whole image, as labelme does: Pillow
truncates coordinates toward zero and clips what falls outside, so drawing on a smaller
canvas or with another library would move boundary pixels.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from segcli.data.labelme.parse import MASK, Shape, patch_extent

LINE_WIDTH = 10  # labelme shape_to_mask default; its converters never change it
POINT_RADIUS = 5  # same: a point is a disc in an 11 px box
# A shape reaching further than FAR image diagonals outside the image is a typo or a unit
# mix-up, not an annotation. Pillow's ellipse slows down without bound (0.02 s at a radius of
# 400,000 px, 29 s at 700,000 on Pillow 13), so a circle is also capped at MAX_RADIUS whatever
# the image size.
FAR = 4
MAX_RADIUS = 2**18


def extent_problem(shape: Shape, height: int, width: int) -> str | None:
    """Why `shape` lies absurdly far outside a height x width image, or None if it does not."""
    margin = FAR * math.hypot(height, width)
    for x, y in shape.points:
        if not (-margin <= x <= width + margin and -margin <= y <= height + margin):
            return f"point [{x:g}, {y:g}] lies far outside the {width}x{height} image"
    if shape.shape_type == "circle":
        radius = circle_radius(shape)
        if radius > min(margin, MAX_RADIUS):
            return f"circle radius {radius:g} px is far larger than the {width}x{height} image"
    return None


def circle_radius(shape: Shape) -> float:
    (cx, cy), (px, py) = shape.points  # the centre, a point on the rim
    return math.hypot(cx - px, cy - py)


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the pixels labelme assigns to `shape`."""
    if shape.shape_type == MASK:
        return paste_patch(shape, height, width)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    xy = list(shape.points)
    kind = shape.shape_type
    if kind == "circle":
        (cx, cy), r = xy[0], circle_radius(shape)
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
    x1, y1 = np.asarray(shape.points[0]).round().astype(int)
    extent_h, extent_w = patch_extent(shape.points, shape.patch.shape)
    out = np.zeros((height, width), bool)
    top, bottom = max(y1, 0), min(y1 + extent_h, height)
    left, right = max(x1, 0), min(x1 + extent_w, width)
    if top < bottom and left < right:
        out[top:bottom, left:right] = shape.patch[top - y1 : bottom - y1, left - x1 : right - x1]
    return out
