"""convert-labelme against labelme's own converted outputs in ../shared/data/labelme/.

labelme's outputs were made with older Pillow versions, whose polygon fill differs by about
one boundary pixel (labelme-semantics section 8: the same sofa polygons gave 14001 px in 2020
and 14002 px in 2023). So the masks must agree except for at most two boundary pixels per
shape; measured with Pillow 13: 0, 1 and 0 px on the three VOC images, 8 px of 1.1 M on the
tutorial. COCO areas and boxes (pixel counts of the same rasterisation) must match exactly.
"""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from conftest import SHARED_DATA

EXAMPLES = SHARED_DATA / "labelme"
VOC_STEMS = ("2011_000003", "2011_000006", "2011_000025")
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/data/labelme absent")


def convert(cli, folder, *flags):
    result = cli("convert-labelme", folder, "--out", "out", "--workers", "0", *flags)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


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


@pytest.mark.parametrize("example", ["semantic_segmentation", "instance_segmentation"])
def test_voc_masks_match_labelme2voc(cli, in_tmp, example):
    root = EXAMPLES / example
    convert(cli, root / "data_annotated", "--labels", root / "labels.txt", "--noviz")
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
            assert_agrees(np.asarray(ours), read_png(theirs / kind / f"{stem}.png"), shapes)


def test_coco_instances_match_labelme2coco(cli, in_tmp):
    root = EXAMPLES / "instance_segmentation"
    convert(cli, root / "data_annotated", "--labels", root / "labels.txt", "--noviz")
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
        assert best["area"] == theirs_ann["area"] and best["bbox"] == theirs_ann["bbox"]
        assert best["iscrowd"] == 0 and isinstance(best["segmentation"], list)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_tutorial_embedded_image_wrong_path_sorted_classes(cli, in_tmp):
    root = EXAMPLES / "tutorial"
    convert(cli, root)  # imagePath names the JSON itself: only imageData can be used
    out = in_tmp / "out"
    expected = (root / "apc2016_obj3" / "label_names.txt").read_text().splitlines()
    assert (out / "class_names.txt").read_text().splitlines() == expected
    assert_agrees(
        read_png(out / "SegmentationClass" / "apc2016_obj3.png"),
        read_png(root / "apc2016_obj3" / "label.png"),
        shape_count(root / "apc2016_obj3.json"),
    )
    # The embedded bytes are an upright JPEG: copied, not re-encoded.
    jpeg = (out / "JPEGImages" / "apc2016_obj3.jpg").read_bytes()
    assert jpeg == (root / "apc2016_obj3.jpg").read_bytes()
    assert (out / "SegmentationClassVisualization" / "apc2016_obj3.jpg").is_file()
    assert (out / "SegmentationObjectVisualization" / "apc2016_obj3.jpg").is_file()


def test_every_primitive_shape_type(cli, in_tmp):
    convert(cli, EXAMPLES / "primitives", "--noviz")
    out = in_tmp / "out"
    names = (out / "class_names.txt").read_text().splitlines()
    assert names == ["_background_", "circle", "line", "line_strip", "octagon", "point",
                     "polygon", "rectangle"]  # fmt: skip
    cls = read_png(out / "SegmentationClass" / "primitives.png")
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
    # Circle: centre (195, 84) through (225, 125), r = 50.8.
    r = np.hypot(30, 41)
    assert region("circle").sum() == pytest.approx(np.pi * r**2, rel=0.03)
    # Lines are 10 px wide; the strip has rounded joints.
    assert region("line").sum() == pytest.approx(10 * np.hypot(28, 46), rel=0.15)
    assert region("line_strip").sum() == pytest.approx(10 * (np.hypot(38, 93) + 142), rel=0.1)
    # The mask patch (100 x 100, 7275 px) is pasted at round(417.4, 305) = (417, 305).
    ys, xs = np.nonzero(region("octagon"))
    assert region("octagon").sum() == 7275
    assert xs.min() >= 417 and xs.max() <= 516 and ys.min() >= 305 and ys.max() <= 404
    polygon = np.array([[69, 318], [45, 403], [173, 406], [198, 321]], float)
    x, y = polygon.T
    shoelace = abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2
    assert region("polygon").sum() == pytest.approx(shoelace, rel=0.05)

    coco = json.loads((out / "annotations.json").read_text())
    by_name = {names[a["category_id"]]: a for a in coco["annotations"]}
    assert isinstance(by_name["polygon"]["segmentation"], list)
    for name in ("circle", "line", "line_strip", "octagon", "point"):  # RLE of the raster
        assert set(by_name[name]["segmentation"]) == {"size", "counts"}
        assert by_name[name]["area"] == region(name).sum()


def test_classification_files_without_shapes(cli, in_tmp):
    convert(cli, EXAMPLES / "classification" / "data_annotated", "--noviz")
    out = in_tmp / "out"
    assert (out / "class_names.txt").read_text() == "_background_\n"
    for stem in ("0001", "0002"):
        assert not read_png(out / "SegmentationClass" / f"{stem}.png").any()
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 2 and coco["annotations"] == [] and coco["categories"] == []
    sets = out / "ImageSets" / "Segmentation"
    train, val = ((sets / f"{s}.txt").read_text().split() for s in ("train", "val"))
    assert sorted(train + val) == ["0001", "0002"] and len(val) == 1
