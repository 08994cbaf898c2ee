"""convert-labelme against labelme's own converted outputs in ../shared/data/labelme/.

labelme's outputs were made with older Pillow versions, whose polygon fill differs by about
one boundary pixel (labelme-semantics section 8: the same sofa polygons gave 14001 px in 2020
and 14002 px in 2023). So the masks must agree except for at most two boundary pixels per
shape; measured with Pillow 13: 0, 1 and 0 px on the three VOC images, 8 px of 1.1 M on the
tutorial. COCO areas may differ by 2 px and boxes by 1 px for the same reason (setup.cfg
allows Pillow >= 10). Shape types without a labelme output (primitives.json, and
oriented_rectangle anywhere) are compared with `labelme_shape_to_mask` below, labelme v7.1.0's
shape_to_mask line for line, at most 2 px apart per shape.
"""

import base64
import io
import json
import math

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
from labelme_files import convert, ok, png
from PIL import Image
from pycocotools.coco import COCO

from helpers import SHARED_DATA

EXAMPLES = SHARED_DATA / "labelme"
VOC_STEMS = ("2011_000003", "2011_000006", "2011_000025")
needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/labelme absent")


def labelme_shape_to_mask(img_shape, points, shape_type=None, line_width=10, point_size=5):
    """labelme v7.1.0 examples/utils.py shape_to_mask (labelme-semantics section 1)."""
    mask = np.zeros(img_shape[:2], dtype=np.uint8)
    mask = PIL.Image.fromarray(mask)
    draw = PIL.ImageDraw.Draw(mask)
    xy = [tuple(point) for point in points]
    if shape_type == "circle":
        assert len(xy) == 2, "Shape of shape_type=circle must have 2 points"
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        assert len(xy) == 2, "Shape of shape_type=rectangle must have 2 points"
        (x1, y1), (x2, y2) = xy
        xy = [(min(x1, x2), min(y1, y2)), (max(x1, x2), max(y1, y2))]
        draw.rectangle(xy, outline=1, fill=1)
    elif shape_type == "line":
        assert len(xy) == 2, "Shape of shape_type=line must have 2 points"
        draw.line(xy=xy, fill=1, width=line_width)
    elif shape_type == "linestrip":
        draw.line(xy=xy, fill=1, width=line_width, joint="curve")
    elif shape_type == "point":
        assert len(xy) == 1, "Shape of shape_type=point must have 1 points"
        cx, cy = xy[0]
        r = point_size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    elif shape_type in [None, "polygon", "oriented_rectangle"]:
        assert len(xy) > 2, "Polygon must have points more than 2"
        draw.polygon(xy=xy, outline=1, fill=1)
    else:
        raise ValueError(f"shape_type={shape_type!r} is not supported.")
    return np.array(mask, dtype=bool)


def labelme_mask_shape(img_shape, points, mask_b64):
    """labelme v7.1.0 shapes_to_label's `mask` branch: the patch pasted at round(points[0]),
    bbox-sized (both ends inclusive) for integer corners, its own size otherwise, clipped."""
    patch = np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(mask_b64)))).astype(bool)
    (x1, y1), (x2, y2) = np.asarray(points).round().astype(int)
    if all(float(v).is_integer() for point in points for v in point):
        h, w = y2 - y1 + 1, x2 - x1 + 1
    else:
        h, w = patch.shape
    full = np.zeros(img_shape[:2], bool)
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y1 + h, img_shape[0]), min(x1 + w, img_shape[1])
    if top < bottom and left < right:
        full[top:bottom, left:right] = patch[top - y1 : bottom - y1, left - x1 : right - x1]
    return full


def labelme_class_map(record: dict, names: list[str]) -> np.ndarray:
    """shapes_to_label's class map: every shape painted in file order, later ones on top."""
    img_shape = (record["imageHeight"], record["imageWidth"])
    cls = np.zeros(img_shape, np.int32)
    for shape in record["shapes"]:
        if shape["shape_type"] == "mask":
            mask = labelme_mask_shape(img_shape, shape["points"], shape["mask"])
        else:
            mask = labelme_shape_to_mask(img_shape, shape["points"], shape["shape_type"])
        cls[mask] = names.index(shape["label"])
    return cls


def assert_regions_agree(ours: np.ndarray, theirs: np.ndarray, names: list[str]) -> dict:
    """Each class's region at most 2 px apart; returns labelme's pixel count per name."""
    counts = {}
    for i, name in enumerate(names[1:], start=1):
        differ = int(((ours == i) != (theirs == i)).sum())
        assert differ <= 2, (name, differ)
        counts[name] = int((theirs == i).sum())
    return counts


def assert_agrees(ours: np.ndarray, theirs: np.ndarray, shapes: int) -> None:
    """Equal but for a few pixels, each on a region boundary of labelme's map."""
    assert ours.shape == theirs.shape
    ys, xs = np.nonzero(ours != theirs)
    assert len(ys) <= 2 * shapes, f"{len(ys)} pixels differ"
    padded = np.pad(theirs, 1, mode="edge")
    for y, x in zip(ys, xs):
        assert len(np.unique(padded[y : y + 3, x : x + 3])) > 1, (y, x)


def shape_count(json_path) -> int:
    return len(json.loads(json_path.read_text())["shapes"])


@needs_examples
@pytest.mark.parametrize("example", ["semantic_segmentation", "instance_segmentation"])
def test_voc_masks_match_labelme2voc(cli, in_tmp, example):
    root = EXAMPLES / example
    ok(convert(cli, root / "data_annotated", "--labels", root / "labels.txt"))
    theirs = root / "data_dataset_voc"
    assert (in_tmp / "out" / "class_names.txt").read_text().split("\n")[:-1] == (
        (theirs / "class_names.txt").read_text().split("\n")
    )
    kinds = ["SegmentationClass"] + (["SegmentationObject"] if example.startswith("ins") else [])
    for stem in VOC_STEMS:
        shapes = shape_count(root / "data_annotated" / f"{stem}.json")
        for kind in kinds:
            ours = Image.open(in_tmp / "out" / kind / f"{stem}.png")
            assert ours.mode == "P"
            assert_agrees(np.asarray(ours), png(theirs / kind / f"{stem}.png"), shapes)


@needs_examples
def test_coco_instances_match_labelme2coco(cli, in_tmp):
    root = EXAMPLES / "instance_segmentation"
    ok(convert(cli, root / "data_annotated", "--labels", root / "labels.txt"))
    ours = COCO(str(in_tmp / "out" / "annotations.json"))
    theirs = COCO(str(root / "data_dataset_coco" / "annotations.json"))
    assert [c["id"] for c in ours.dataset["categories"]] == list(range(1, 21))
    our_images = {image["file_name"]: image["id"] for image in ours.dataset["images"]}
    assert len(ours.dataset["annotations"]) == len(theirs.dataset["annotations"]) == 12
    for theirs_ann in theirs.dataset["annotations"]:
        name = theirs.cats[theirs_ann["category_id"]]["name"]
        image_id = our_images[theirs.imgs[theirs_ann["image_id"]]["file_name"]]
        mask = theirs.annToMask(theirs_ann).astype(bool)
        candidates = [
            a
            for a in ours.loadAnns(ours.getAnnIds(imgIds=[image_id]))
            if ours.cats[a["category_id"]]["name"] == name
        ]
        ious = [iou(mask, ours.annToMask(a).astype(bool)) for a in candidates]
        best = candidates[int(np.argmax(ious))]
        assert max(ious) >= 0.99, (name, ious)
        assert abs(best["area"] - theirs_ann["area"]) <= 2, (name, best["area"])
        assert np.abs(np.subtract(best["bbox"], theirs_ann["bbox"])).max() <= 1, name
        assert best["iscrowd"] == 0 and isinstance(best["segmentation"], list)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@needs_examples
def test_tutorial_embedded_image_wrong_path_sorted_classes(cli, in_tmp):
    root = EXAMPLES / "tutorial"
    ok(convert(cli, root, viz=True))  # imagePath names the JSON itself: only imageData can be used
    out = in_tmp / "out"
    expected = (root / "apc2016_obj3" / "label_names.txt").read_text().splitlines()
    assert (out / "class_names.txt").read_text().splitlines() == expected
    assert_agrees(
        png(out / "SegmentationClass" / "apc2016_obj3.png"),
        png(root / "apc2016_obj3" / "label.png"),
        shape_count(root / "apc2016_obj3.json"),
    )
    # The embedded bytes are an upright JPEG: copied, not re-encoded.
    jpeg = (out / "JPEGImages" / "apc2016_obj3.jpg").read_bytes()
    assert jpeg == (root / "apc2016_obj3.jpg").read_bytes()
    assert (out / "SegmentationClassVisualization" / "apc2016_obj3.jpg").is_file()
    assert (out / "SegmentationObjectVisualization" / "apc2016_obj3.jpg").is_file()


@needs_examples
def test_every_primitive_shape_type(cli, in_tmp):
    ok(convert(cli, EXAMPLES / "primitives"))
    out = in_tmp / "out"
    names = (out / "class_names.txt").read_text().splitlines()
    assert names == ["_background_", "circle", "line", "line_strip", "octagon", "point",
                     "polygon", "rectangle"]  # fmt: skip
    cls = png(out / "SegmentationClass" / "primitives.png")
    assert cls.shape == (450, 560)

    def region(name):
        return cls == names.index(name)

    # Rectangles: both corners inclusive, (32,35)-(132,135) is 101 x 101 px.
    boxes = np.zeros_like(cls, bool)
    boxes[35:136, 32:133] = boxes[33:136, 391:543] = True
    assert (region("rectangle") == boxes).all()
    # A point is a disc of radius 5 in an 11 px box around (345, 174).
    ys, xs = np.nonzero(region("point"))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (340, 350, 169, 179)
    # The mask patch (100 x 100, 7275 px) is pasted at round(417.4, 305) = (417, 305).
    ys, xs = np.nonzero(region("octagon"))
    assert xs.min() >= 417 and xs.max() <= 516 and ys.min() >= 305 and ys.max() <= 404
    # Every shape as labelme draws it: line width 10 (11 gives 589 px), a strip with rounded
    # joints (2341 px without joint="curve"), circle r = |(30, 41)| = 50.8; Pillow 13 counts.
    record = json.loads((EXAMPLES / "primitives" / "primitives.json").read_text())
    counts = assert_regions_agree(cls, labelme_class_map(record, names), names)
    expected = {"circle": 8144, "line": 514, "line_strip": 2358, "octagon": 7275, "point": 97,
                "polygon": 11085, "rectangle": 101 * 101 + 152 * 103}  # fmt: skip
    for name, count in expected.items():
        assert abs(int(region(name).sum()) - count) <= 2, (name, int(region(name).sum()))
        assert abs(counts[name] - count) <= 2, (name, counts[name])

    coco = json.loads((out / "annotations.json").read_text())
    by_name = {names[a["category_id"]]: a for a in coco["annotations"]}
    assert isinstance(by_name["polygon"]["segmentation"], list)
    for name in ("circle", "line", "line_strip", "octagon", "point"):  # RLE of the raster
        assert set(by_name[name]["segmentation"]) == {"size", "counts"}
        assert by_name[name]["area"] == region(name).sum()


@needs_examples
def test_classification_files_without_shapes(cli, in_tmp):
    ok(convert(cli, EXAMPLES / "classification" / "data_annotated"))
    out = in_tmp / "out"
    assert (out / "class_names.txt").read_text() == "_background_\n"
    for stem in ("0001", "0002"):
        assert not png(out / "SegmentationClass" / f"{stem}.png").any()
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 2 and coco["annotations"] == [] and coco["categories"] == []
    sets = out / "ImageSets" / "Segmentation"
    train, val = ((sets / f"{s}.txt").read_text().split() for s in ("train", "val"))
    assert sorted(train + val) == ["0001", "0002"] and len(val) == 1


def test_every_shape_type_matches_labelme_shape_to_mask(cli, in_tmp):
    """No labelme output holds an oriented_rectangle (nor fractional, reversed or clipped
    shapes of each type): compare with the reimplementation above."""
    buffer = io.BytesIO()
    Image.fromarray((np.arange(11 * 13).reshape(11, 13) % 3 == 0).astype(np.uint8)).save(
        buffer, format="PNG"
    )
    patch = base64.b64encode(buffer.getvalue()).decode()
    shapes = [
        ("polygon", [[5.7, 3.2], [40.5, 8.9], [22.1, 35.6]], {}),
        ("rectangle", [[70.9, 30.4], [48.2, 4.6]], {}),  # drawn right to left
        ("circle", [[95.5, 20.25], [118.0, 31.7]], {}),  # crosses the top edge
        ("line", [[3.3, 50.5], [60.8, 71.2]], {}),
        ("linestrip", [[70.2, 45.0], [90.7, 75.3], [110.4, 48.8], [125.0, 70.0]], {}),
        ("point", [[136.6, 8.4]], {}),
        ("oriented_rectangle", [[20.5, 80.0], [50.3, 62.7], [61.8, 82.6], [32.0, 99.9]], {}),
        ("mask", [[140.4, 40.6], [152.4, 50.6]], {"mask": patch}),  # fractional: own size
        ("mask_int", [[-4.0, 100.0], [8.0, 110.0]], {"mask": patch}),  # clipped at the left
    ]
    height, width = 120, 160
    record = {"version": "5.7.0", "flags": {}, "imagePath": "a.png", "imageData": None,
              "imageHeight": height, "imageWidth": width, "shapes": [
                  {"label": name, "points": points, "group_id": None, "flags": {},
                   "shape_type": name.removesuffix("_int"), **extra}
                  for name, points, extra in shapes]}  # fmt: skip
    (in_tmp / "lm").mkdir()
    Image.new("RGB", (width, height), (90, 120, 30)).save(in_tmp / "lm" / "a.png")
    (in_tmp / "lm" / "a.json").write_text(json.dumps(record))
    ok(convert(cli, in_tmp / "lm"))
    names = (in_tmp / "out" / "class_names.txt").read_text().splitlines()
    ours = png(in_tmp / "out" / "SegmentationClass" / "a.png")
    counts = assert_regions_agree(ours, labelme_class_map(record, names), names)
    assert all(counts[name] > 0 for name, _, _ in shapes), counts
