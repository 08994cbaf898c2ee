"""COCO-format instance data: the json read and checked, one split as a source, RLE helpers.

An instance source has `__len__`, `name(i)`, `load(i) -> dict(image uint8 [H,W,3],
instances [{label 1..K, mask bool [H,W], box xyxy (optional)}], name, image_id)`,
`class_names` (background first, so K+1 names), `category_ids` (the COCO id of each label
1..K) and `coco()` (the split's ground truth as a pycocotools COCO, crowd regions included).
"""

from __future__ import annotations

import contextlib
import io
import json
from functools import cached_property
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segcli.data.images import read_image
from segcli.data.shapes import ShapesDataset
from segcli.errors import DataError

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
    """The json at `path`, checked for what segcli relies on; errors name the file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a COCO object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DataError(f"{path}: no '{key}' list (not a COCO instances file)")
    _check_entries(doc, path)
    return doc


def _check_entries(doc: dict, path: Path) -> None:
    for kind, keys in (
        ("images", ("id", "file_name", "height", "width")),
        ("categories", ("id", "name")),
    ):
        for entry in doc[kind]:
            if not isinstance(entry, dict) or any(key not in entry for key in keys):
                raise DataError(f"{path}: an entry of '{kind}' lacks one of {', '.join(keys)}")
    images = {img["id"] for img in doc["images"]}
    categories = {c["id"] for c in doc["categories"]}
    for ann in doc["annotations"]:
        ident = ann.get("id", "?") if isinstance(ann, dict) else "?"
        if not isinstance(ann, dict) or "segmentation" not in ann or "image_id" not in ann:
            raise DataError(f"{path}: annotation {ident} has no image_id or segmentation")
        if ann["image_id"] not in images:
            raise DataError(
                f"{path}: annotation {ident} points at image {ann['image_id']}, "
                "which is not in 'images'"
            )
        if ann.get("category_id") not in categories:
            raise DataError(
                f"{path}: annotation {ident} has unknown category {ann.get('category_id')!r}"
            )
        problem = _rle_problem(ann["segmentation"])
        if problem:
            raise DataError(f"{path}: annotation {ident}: {problem}")


def _rle_problem(segmentation) -> str | None:
    """What is wrong with an uncompressed RLE (pycocotools loops forever on short counts)."""
    if not isinstance(segmentation, dict):
        return None
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if not (isinstance(size, list) and len(size) == 2):
        return "RLE segmentation without a [height, width] size"
    if isinstance(counts, list) and sum(counts) != size[0] * size[1]:
        return f"RLE counts add up to {sum(counts)}, not height x width = {size[0] * size[1]}"
    return None


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

    def load(self, index: int) -> dict:
        entry = self.images[index]
        path = self.image_dir / entry["file_name"]
        image = read_image(path)
        if image.shape[:2] != (entry["height"], entry["width"]):
            raise DataError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} but "
                f"{self.ann_path.name} says {entry['width']}x{entry['height']}"
            )
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
            "image_path": path,
        }


def _ann_box(ann: dict, mask: np.ndarray) -> list[float]:
    """The annotation's own box (xywh -> xyxy) when it has one, else the mask's extent."""
    box = ann.get("bbox")
    if isinstance(box, list) and len(box) == 4 and box[2] >= 1 and box[3] >= 1:
        return [box[0], box[1], box[0] + box[2], box[1] + box[3]]
    return mask_box(mask)


class ShapesInstances(ShapesDataset):
    """The built-in shapes data in instance form: one mask per shape, image id = index + 1."""

    category_ids = (1, 2, 3)

    def load(self, index: int) -> dict:
        return {**super().load(index), "image_id": index + 1}

    @cached_property
    def _coco(self) -> COCO:
        images, annotations = [], []
        for index in range(len(self)):
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
                x1, y1, x2, y2 = mask_box(inst["mask"])
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
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise DataError(f"{list_file}: split list not found")
    stems = {line.split()[0] for line in list_file.read_text().splitlines() if line.strip()}
    doc = read_coco_json(ann_path)
    ids = [img["id"] for img in doc["images"] if Path(img["file_name"]).stem in stems]
    missing = stems - {Path(img["file_name"]).stem for img in doc["images"]}
    if missing:
        raise DataError(f"{list_file}: '{sorted(missing)[0]}' is not an image of {ann_path.name}")
    return CocoSource(split_doc(doc, ids), root, ann_path, _background_name(root))


def _background_name(root: Path) -> str:
    path = root / "class_names.txt"
    first = path.read_text().split("\n", 1)[0].strip() if path.is_file() else ""
    return first or "background"


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
