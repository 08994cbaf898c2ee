"""Generated labelme folders for the convert-labelme tests."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 40, 56


def shape(label, points, kind="polygon", group_id=None, **extra):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": kind,
            "flags": {}, **extra}  # fmt: skip


def square(label, x, y, size=10, group_id=None):
    return shape(label, [[x, y], [x + size, y], [x + size, y + size], [x, y + size]],
                 group_id=group_id)  # fmt: skip


def labelme_file(folder: Path, stem: str, shapes: list, image_path=None, size=(H, W), **record):
    """A JPEG and its labelme JSON (imageHeight/Width = size unless given)."""
    folder.mkdir(parents=True, exist_ok=True)
    image_path = image_path or f"{stem}.jpg"
    target = folder / image_path.replace("\\", "/")
    target.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(stem) + len(shapes))
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(target)
    body = {"version": "5.7.0", "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": None, "imageHeight": size[0], "imageWidth": size[1], **record}  # fmt: skip
    (folder / f"{stem}.json").write_text(json.dumps(body))
    return folder / f"{stem}.json"


def convert(cli, folder, *flags, out="out", viz=False):
    noviz = () if viz else ("--noviz",)
    return cli("convert-labelme", folder, "--out", out, "--workers", "0", *noviz, *flags)


def ok(result):
    assert result.exit_code == 0, result.output + result.stderr
    return result


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def coco(out: Path) -> dict:
    return json.loads((out / "annotations.json").read_text())
