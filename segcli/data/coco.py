"""COCO-format instance data: the json read and checked, one split as a source, RLE helpers.

An instance source has `__len__`, `name(i)`, `load(i) -> dict(image uint8 [H,W,3],
instances [{label 1..K, mask bool [H,W], box xyxy}], name, image_id)`, `load_image(i)` (the
image alone, no annotation decoded) and `image_id(i)`, `class_names` (background first, so
K+1 names), `category_ids` (the COCO id of each label 1..K) and `coco()` (the split's ground
truth as a pycocotools COCO, crowd regions included).
"""

from __future__ import annotations

import contextlib
import io
import math
from functools import cached_property
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segcli.data.folders import read_class_names, read_split_ids, split_list
from segcli.data.images import read_image
from segcli.data.shapes import ShapesDataset
from segcli.errors import DataError
from segcli.io import read_json
from segcli.progress import tracked

LAYOUTS = (
    "a COCO root (annotations/instances_<split>*.json + image folders) or a convert-labelme "
    "folder (annotations.json, JPEGImages/, ImageSets/Segmentation/<split>.txt)"
)


def quiet():
    """pycocotools prints progress on stdout; segcli's output stays its own."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_from_dict(doc: dict) -> COCO:
    coco = COCO()
    coco.dataset = doc
    with quiet():
        coco.createIndex()
    return coco


def encode_masks(masks: np.ndarray) -> list[dict]:
    """COCO compressed RLEs (counts as str, JSON-ready) of binary masks [N, H, W]."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in rles]


def mask_box(mask: np.ndarray) -> list[float]:
    """[x1, y1, x2, y2] enclosing the mask's pixels (x2, y2 exclusive, as COCO's x + w)."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def read_coco_json(path: Path) -> dict:
    """The json at `path`, checked for what segcli and COCOeval rely on; errors name the file."""
    doc = read_json(path, "COCO annotation file")
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a COCO object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{path}: no '{key}' list (not a COCO instances file)")
    _check_entries(doc, path)
    return doc


ENTRY_KEYS = {"images": ("id", "file_name", "height", "width"), "categories": ("id", "name")}
ANNOTATION_KEYS = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")


def _check_entries(doc: dict, path: Path) -> None:
    """Everything pycocotools reads later (COCO, annToMask, COCOeval), checked now, so a bad
    file stops training before its first step rather than at the first validation."""
    sizes = _image_sizes(doc, path)
    categories = {c["id"] for c in doc["categories"]}
    seen = set()
    for index, ann in enumerate(doc["annotations"]):
        has_id = isinstance(ann, dict) and _is_int(ann.get("id"))
        ident = ann["id"] if has_id else f"at index {index}"
        problem = _annotation_problem(ann, sizes, categories)
        if problem is None and ident in seen:
            problem = ": its id is used by another annotation"
        if problem:
            raise DataError(f"{path}: annotation {ident}{problem}")
        seen.add(ident)


def _image_sizes(doc: dict, path: Path) -> dict[int, tuple[int, int]]:
    """(height, width) of every image id, the images and categories checked on the way."""
    for kind, keys in ENTRY_KEYS.items():
        for entry in doc[kind]:
            if not isinstance(entry, dict) or any(key not in entry for key in keys):
                raise DataError(f"{path}: an entry of '{kind}' lacks one of {', '.join(keys)}")
            if not _is_int(entry["id"]):
                raise DataError(f"{path}: '{kind}' id {entry['id']!r} is not an integer")
    sizes = {img["id"]: (img["height"], img["width"]) for img in doc["images"]}
    for image_id, (height, width) in sizes.items():
        if not (_is_int(height) and _is_int(width) and min(height, width) > 0):
            raise DataError(f"{path}: image {image_id}: height and width must be positive integers")
    return sizes


def _annotation_problem(ann, sizes: dict, categories: set) -> str | None:
    """What is wrong with one annotation (the text after "annotation <id>"), or None."""
    if not isinstance(ann, dict):
        return " is not an object"
    missing = [key for key in ANNOTATION_KEYS if key not in ann]
    if missing:
        return f" lacks {', '.join(missing)}"
    if not _is_int(ann["id"]):
        return f": id {ann['id']!r} is not an integer"
    if not _is_int(ann["image_id"]) or ann["image_id"] not in sizes:
        return f" points at image {ann['image_id']}, which is not in 'images'"
    if not _is_int(ann["category_id"]) or ann["category_id"] not in categories:
        return f" has unknown category {ann['category_id']!r}"
    if ann["iscrowd"] not in (0, 1):
        return f": iscrowd is {ann['iscrowd']!r}, not 0 or 1"
    if not is_number(ann["area"]) or ann["area"] < 0:
        return f": area {ann['area']!r} is not a non-negative number"
    if not is_box(ann["bbox"]):
        return f": bbox {ann['bbox']!r} is not [x, y, width, height]"
    problem = segmentation_problem(ann["segmentation"], sizes[ann["image_id"]])
    return f": {problem}" if problem else None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_box(b) -> bool:
    """A COCO box: [x, y, width, height], finite numbers, width and height not negative."""
    return isinstance(b, list) and len(b) == 4 and all(map(is_number, b)) and min(b[2:]) >= 0


def segmentation_problem(segmentation, size: tuple[int, int]) -> str | None:
    """What is wrong with a ground-truth segmentation of an image of `size` (height, width):
    polygons (pycocotools reads a 4-number "polygon" as a box and fails on fewer) or an RLE."""
    if isinstance(segmentation, dict):
        return rle_problem(segmentation, size)
    if not isinstance(segmentation, list):
        return "segmentation is neither a list of polygons nor an RLE object"
    if not segmentation:
        return "segmentation is an empty list (no polygon)"
    for k, polygon in enumerate(segmentation, start=1):
        try:  # what pycocotools' frPoly takes: np.array(polygon, dtype=np.double)
            xy = np.asarray(polygon if isinstance(polygon, list) else None, dtype=np.float64)
        except (TypeError, ValueError):
            xy = None
        if xy is None or xy.ndim != 1 or not np.isfinite(xy).all():
            return f"polygon {k} is not a list of numbers"
        if len(polygon) < 6 or len(polygon) % 2:
            return f"polygon {k} has {len(polygon)} numbers (needs x, y pairs of 3 or more points)"
    return None


def rle_problem(rle: dict, size: tuple[int, int], result: bool = False) -> str | None:
    """What is wrong with an RLE for an image of `size` (height, width). Ground truth
    (`result` False): counts a string or a list, and since pycocotools loops forever on short
    counts and decodes bad strings into garbage, the runs must cover the image (slow in
    Python). A result: counts must be a string, its runs unchecked (results are never
    decoded)."""
    rle_size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(map(_is_int, rle_size))):
        return "RLE segmentation without a [height, width] size"
    if tuple(rle_size) != tuple(size):
        return f"RLE size {rle_size} is not its image's [height, width] {list(size)}"
    if isinstance(counts, str):
        runs = None if result else _string_counts(counts)
        if not result and runs is None:
            return "RLE counts string is malformed"
    elif isinstance(counts, list) and not result:
        if not all(_is_int(c) and c >= 0 for c in counts):
            return "RLE counts are not non-negative integers"
        runs = counts
    else:
        return "RLE counts must be a string" + ("" if result else " or a list of integers")
    if runs is not None and sum(runs) != size[0] * size[1]:
        return f"RLE counts add up to {sum(runs)}, not height x width = {size[0] * size[1]}"
    return None


def _string_counts(counts: str) -> list[int] | None:
    """The run lengths of a compressed RLE string (pycocotools' rleFrString: 5 bits a char,
    sign-extended, each run after the second stored as a difference), None if malformed."""
    runs, value, shift = [], 0, 0
    for char in counts:
        c = ord(char) - 48
        if not 0 <= c < 64:
            return None
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:
            continue
        if c & 0x10:
            value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
        value, shift = 0, 0
    return runs if shift == 0 else None


def split_doc(doc: dict, image_ids: list[int]) -> dict:
    """The same document restricted to `image_ids` (COCOeval scores every gt image)."""
    keep = set(image_ids)
    return {
        **doc,
        "images": [img for img in doc["images"] if img["id"] in keep],
        "annotations": [a for a in doc["annotations"] if a["image_id"] in keep],
    }


class CocoSource:
    """One split of a COCO instances file and its image folder."""

    def __init__(self, doc: dict, image_dir: Path, ann_path: Path, background: str = "background"):
        self.ann_path, self.image_dir = ann_path, image_dir
        self.doc = doc
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        self.category_ids = tuple(c["id"] for c in cats)
        self.class_names = (background, *(c["name"] for c in cats))
        self._label = {cid: i for i, cid in enumerate(self.category_ids, start=1)}
        self.images = sorted(doc["images"], key=lambda img: img["id"])
        for img in self.images:
            if not (image_dir / img["file_name"]).is_file():
                raise DataError(
                    f"{ann_path}: image {img['id']} '{img['file_name']}' not found in {image_dir}"
                )

    @cached_property
    def _coco(self) -> COCO:
        return coco_from_dict(self.doc)

    def coco(self) -> COCO:
        return self._coco

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return Path(self.images[index]["file_name"]).stem

    def image_id(self, index: int) -> int:
        return self.images[index]["id"]

    def load_image(self, index: int) -> np.ndarray:
        """The image alone (RGB uint8 [H, W, 3]), checked against the size the json gives."""
        entry = self.images[index]
        path = self.image_dir / entry["file_name"]
        image = read_image(path)
        if image.shape[:2] != (entry["height"], entry["width"]):
            raise DataError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} but "
                f"{self.ann_path.name} says {entry['width']}x{entry['height']}"
            )
        return image

    def load(self, index: int) -> dict:
        entry = self.images[index]
        image = self.load_image(index)
        instances = []
        for ann in self._coco.imgToAnns[entry["id"]]:
            if ann.get("iscrowd", 0):  # crowd regions are COCOeval's to ignore, not objects
                continue
            mask = self._coco.annToMask(ann).astype(bool)
            if mask.any():
                instances.append(
                    {
                        "label": self._label[ann["category_id"]],
                        "mask": mask,
                        "box": _ann_box(ann, mask),
                    }
                )
        return {
            "image": image,
            "instances": instances,
            "name": self.name(index),
            "image_id": entry["id"],
            "image_path": self.image_dir / entry["file_name"],
        }


def _ann_box(ann: dict, mask: np.ndarray) -> list[float]:
    """The annotation's own box (xywh -> xyxy) when it has one, else the mask's extent."""
    box = ann.get("bbox")
    if isinstance(box, list) and len(box) == 4 and box[2] >= 1 and box[3] >= 1:
        return [box[0], box[1], box[0] + box[2], box[1] + box[3]]
    return mask_box(mask)


class ShapesInstances(ShapesDataset):
    """The built-in shapes data in instance form: one mask per shape and its box (the mask's
    extent), image id = index + 1."""

    category_ids = (1, 2, 3)

    def image_id(self, index: int) -> int:
        return index + 1

    def load_image(self, index: int) -> np.ndarray:
        return super().load(index)["image"]

    def load(self, index: int) -> dict:
        sample = super().load(index)
        instances = [{**i, "box": mask_box(i["mask"])} for i in sample["instances"]]
        return {**sample, "instances": instances, "image_id": self.image_id(index)}

    @cached_property
    def _coco(self) -> COCO:
        images, annotations = [], []
        for index in tracked(range(len(self)), "building COCO ground truth"):
            sample = self.load(index)
            images.append(
                {
                    "id": index + 1,
                    "file_name": f"{sample['name']}.png",
                    "height": self.size,
                    "width": self.size,
                }
            )
            masks = np.array([i["mask"] for i in sample["instances"]])
            for inst, rle in zip(sample["instances"], encode_masks(masks)):
                x1, y1, x2, y2 = inst["box"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index + 1,
                        "category_id": inst["label"],
                        "segmentation": rle,
                        "area": float(inst["mask"].sum()),
                        "iscrowd": 0,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                    }
                )
        categories = [{"id": i, "name": n} for i, n in enumerate(self.class_names) if i > 0]
        return coco_from_dict(
            {"images": images, "annotations": annotations, "categories": categories}
        )

    def coco(self) -> COCO:
        return self._coco


def is_labelme_coco(root: Path) -> bool:
    return (root / "annotations.json").is_file() and (root / "JPEGImages").is_dir()


def open_labelme_coco(root: Path, split: str) -> CocoSource:
    """A convert-labelme folder: annotations.json for every image, split by stem lists."""
    ann_path = root / "annotations.json"
    stems = set(read_split_ids(root, split))
    doc = read_coco_json(ann_path)
    ids = [img["id"] for img in doc["images"] if Path(img["file_name"]).stem in stems]
    missing = stems - {Path(img["file_name"]).stem for img in doc["images"]}
    if missing:
        raise DataError(
            f"{split_list(root, split)}: '{sorted(missing)[0]}' is not an image of {ann_path.name}"
        )
    names = read_class_names(root)
    return CocoSource(split_doc(doc, ids), root, ann_path, names[0] if names else "background")


def coco_annotation_file(root: Path, split: str) -> Path | None:
    """root/annotations/instances_<split>*.json (e.g. instances_val2017.json), if exactly one."""
    found = sorted((root / "annotations").glob(f"instances_{split}*.json"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"{root / 'annotations'}: several {split} files ({names}); keep one")
    return found[0] if found else None


def is_coco_root(root: Path) -> bool:
    return bool(list((root / "annotations").glob("instances_*.json")))


def open_coco_root(root: Path, split: str) -> CocoSource:
    """annotations/instances_val2017.json with its images in val2017/ (or images/val2017/,
    images/, or the root itself: the first folder that exists)."""
    ann_path = coco_annotation_file(root, split)
    if ann_path is None:
        raise DataError(f"{root / 'annotations'}: no instances_{split}*.json")
    folder = ann_path.stem.removeprefix("instances_")
    candidates = [root / folder, root / "images" / folder, root / "images", root]
    image_dir = next(p for p in candidates if p.is_dir())
    return CocoSource(read_coco_json(ann_path), image_dir, ann_path)


def open_coco(root: Path, split: str) -> CocoSource:
    if is_labelme_coco(root):
        return open_labelme_coco(root, split)
    if is_coco_root(root):
        return open_coco_root(root, split)
    raise DataError(f"{root}: no COCO instances here; expected {LAYOUTS}")
