"""Ultralytics YOLO segmentation datasets as instance data.

`data.yaml` names the dataset root (`path`, relative to the yaml's folder; default that
folder), the `train` and `val` images (a folder, a .txt list of image paths, or a list of
either) and the classes (`names`: a list, or a dict {id: name} with ids 0..n-1). Each image's
labels sit where Ultralytics looks for them: the last `images` folder of its path replaced by
`labels`, the suffix by `.txt`; one line per object, `class x1 y1 x2 y2 ...` with coordinates
normalised by the image's width and height. An image without a label file has no objects.
YOLO's class id c is segcli's label c + 1 (0 is the background).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from segcli.data.annotations import CocoBuilder
from segcli.data.coco import CocoSource
from segcli.data.images import IMAGE_SUFFIXES
from segcli.errors import DataError

YAML_NAMES = ("data.yaml", "dataset.yaml")


def yolo_yaml(root: Path) -> Path | None:
    """The dataset yaml `--data` names: the file itself, or data.yaml in the folder."""
    if root.is_file():
        return root if root.suffix.lower() in (".yaml", ".yml") else None
    return next((root / n for n in YAML_NAMES if (root / n).is_file()), None)


def open_yolo(root: Path, split: str) -> CocoSource:
    path = yolo_yaml(root)
    spec = _read_yaml(path)
    base = (path.parent / spec.get("path", ".")).resolve()
    names = _names(spec.get("names"), path)
    if spec.get(split) is None:
        raise DataError(f"{path}: no '{split}' images (expected a '{split}:' entry)")
    builder = CocoBuilder(names)
    for image in _images(spec[split], base, path):
        image_id, height, width = builder.add_image(image, str(image.relative_to(base)), str(path))
        for line_no, (category, points) in enumerate(_objects(image, names), start=1):
            where = f"{label_path(image)}: line {line_no}"
            scaled = points * np.array([width, height], dtype=np.float64)
            builder.add_polygon(image_id, scaled, category, where)
    return CocoSource(builder.document(), base, path)


def _read_yaml(path: Path) -> dict:
    try:
        spec = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    if not isinstance(spec, dict):
        raise DataError(f"{path}: expected a mapping with train, val and names")
    return spec


def _names(names, path: Path) -> list[str]:
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise DataError(f"{path}: 'names' ids must be 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise DataError(f"{path}: 'names' must list the classes")
    return [str(n) for n in names]


def _images(entry, base: Path, path: Path) -> list[Path]:
    """The images of a split entry: folders (searched recursively), .txt lists, or a list."""
    found = []
    for item in entry if isinstance(entry, list) else [entry]:
        where = base / str(item)
        if where.is_dir():
            found += sorted(p for p in where.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif where.suffix == ".txt" and where.is_file():
            lines = [s.strip() for s in where.read_text().splitlines() if s.strip()]
            found += [
                (where.parent / s).resolve() if s.startswith(".") else base / s for s in lines
            ]
        else:
            raise DataError(
                f"{path}: '{item}' is neither an image folder nor a .txt list ({where})"
            )
    if not found:
        raise DataError(f"{path}: no images in {entry}")
    return found


def label_path(image: Path) -> Path:
    """Ultralytics' rule: .../images/x.jpg -> .../labels/x.txt (the last `images` folder)."""
    parts = list(image.parts)
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts[index] = "labels"
    return Path(*parts).with_suffix(".txt")


def _objects(image: Path, names: list[str]) -> list[tuple[int, np.ndarray]]:
    """(category id 1..K, normalised points [N, 2]) of every line of the image's label file."""
    path = label_path(image)
    if not path.is_file():
        return []
    objects = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {line_no}"
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise DataError(f"{where}: not numbers ('{line.strip()[:40]}')") from None
        cls = values[0]
        if not cls.is_integer() or not 0 <= cls < len(names):
            raise DataError(
                f"{where}: class {values[0]:g} is not in the class list 0..{len(names) - 1}"
            )
        coords = values[1:]
        if len(coords) == 4:
            raise DataError(f"{where}: a detection box (class cx cy w h), not a polygon")
        if len(coords) < 6 or len(coords) % 2:
            raise DataError(f"{where}: a polygon needs x y pairs of 3 or more points")
        objects.append((int(cls) + 1, np.asarray(coords).reshape(-1, 2)))
    return objects
