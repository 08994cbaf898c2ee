"""Files per second of `segcli convert-labelme` on generated labelme folders.

Writes N labelme JSONs (default 200; 500x375 JPEGs beside them, 12 shapes each covering all
eight types: polygon, rectangle, circle, line, linestrip, point, oriented_rectangle and mask;
some grouped) into a temporary folder, then converts them with 1 worker and with all cores, with
and without overlays, and prints the figures side by side.

    python scripts/bench_labelme.py [--files 200] [--workers N]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console

from segcli.data.labelme.convert import convert_labelme, default_workers

SIZE = (375, 500)  # height, width: a PASCAL VOC photo
LABELS = ("person", "car", "dog", "chair", "bottle")
KINDS = ("polygon", "rectangle", "circle", "line", "linestrip", "point", "oriented_rectangle",
         "mask")  # fmt: skip


def random_shape(rng: np.random.Generator, index: int) -> dict:
    h, w = SIZE
    x, y = rng.uniform(0, w - 60), rng.uniform(0, h - 60)
    kind = KINDS[index % len(KINDS)]
    extra = {}
    if kind == "mask":  # a bbox with integer corners (both inclusive) and its patch
        size = rng.integers(10, 60, 2)
        points = np.array([[x, y], [x + size[1] - 1, y + size[0] - 1]]).round()
        extra = {"mask": _png_base64(rng.random(size) < 0.7)}
    elif kind == "oriented_rectangle":
        angle, half = rng.uniform(0, np.pi), rng.uniform(5, 30, 2)
        u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
        centre = np.array([x + 30, y + 30])
        corners = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        points = np.array([centre + a * half[0] * u + b * half[1] * v for a, b in corners])
    elif kind == "polygon":
        angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
        radius = rng.uniform(10, 50, 12)
        points = np.stack([x + 30 + radius * np.cos(angles), y + 30 + radius * np.sin(angles)], 1)
    elif kind in ("rectangle", "circle", "line"):
        points = np.array([[x, y], [x + rng.uniform(5, 60), y + rng.uniform(5, 60)]])
    elif kind == "linestrip":
        points = np.array([[x, y], [x + 30, y + 50], [x + 60, y + 10]])
    else:
        points = np.array([[x, y]])
    return {
        "label": LABELS[int(rng.integers(len(LABELS)))],
        "points": points.round(2).tolist(),
        "group_id": int(rng.integers(3)) if index % 4 == 0 else None,
        "shape_type": kind,
        "flags": {},
        **extra,
    }


def _png_base64(patch: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(patch.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def generate(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    base = rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)
    for i in range(count):
        stem = f"img{i:04d}"
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"{stem}.jpg", quality=90)
        record = {
            "version": "5.7.0",
            "flags": {},
            "shapes": [random_shape(rng, k) for k in range(12)],
            "imagePath": f"{stem}.jpg",
            "imageData": None,
            "imageHeight": SIZE[0],
            "imageWidth": SIZE[1],
        }
        (folder / f"{stem}.json").write_text(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the script
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "labelme"
        generate(source, args.files)
        print(f"{args.files} labelme files, {SIZE[1]}x{SIZE[0]}, 12 shapes each (8 types)")
        print(f"{'workers':>8} {'overlays':>9} {'seconds':>8} {'files/s':>8}")
        for workers in sorted({1, args.workers}):
            for viz in (True, False):
                out = Path(tmp) / f"out_{workers}_{viz}"
                summary = convert_labelme(source, out, workers=workers, viz=viz, console=quiet)
                print(
                    f"{workers:>8} {'yes' if viz else 'no':>9} {summary['seconds']:>8.2f} "
                    f"{summary['files_per_s']:>8.1f}"
                )


if __name__ == "__main__":
    main()
