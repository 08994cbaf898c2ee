"""Annotation formats users already have: VIA 1.x / 2.x JSON and Ultralytics YOLO segmentation,
read by `train` (instance and semantic recipes) and `check`, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from segcli.data.sources import open_source

from helpers import TINY_FCN, TINY_RCNN, set_flags

SIZE = (48, 64)  # height, width
TRAIN = ["--iters", "2", "--batch-size", "2", "--workers", "0", "--img-size", "48"]


def _image(path: Path, rng) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = rng.integers(0, 60, (*SIZE, 3), dtype=np.uint8)
    image[10:30, 12:40] = 200  # the objects the annotations outline
    Image.fromarray(image).save(path)


def _region(kind: str, label: str | None, version: int) -> dict:
    shapes = {
        "polygon": {
            "name": "polygon", "all_points_x": [12, 40, 40, 12], "all_points_y": [10, 10, 30, 30]
        },
        "rect": {"name": "rect", "x": 5, "y": 5, "width": 20, "height": 12},
        "circle": {"name": "circle", "cx": 30, "cy": 24, "r": 8},
        "ellipse": {"name": "ellipse", "cx": 30, "cy": 24, "rx": 10, "ry": 6, "theta": 0.3},
    }  # fmt: skip
    attributes = {} if label is None else {"kind": label}
    if version == 1:
        shapes["ellipse"].pop("theta")
    return {"shape_attributes": shapes[kind], "region_attributes": attributes}


def write_via(root: Path, version: int = 2, labels=("ball", "cube"), count: int = 4) -> Path:
    """The balloon layout: root/{train,val}/via_region_data.json with the images beside it."""
    rng = np.random.default_rng(version)
    kinds = ("polygon", "rect", "circle", "ellipse")
    for split, n in (("train", count), ("val", 2)):
        entries = {}
        for i in range(n):
            name = f"{split}{i}.jpg"
            _image(root / split / name, rng)
            regions = [
                _region(
                    kinds[(i + k) % 4], None if labels is None else labels[k % len(labels)], version
                )
                for k in range(2)
            ]
            entries[f"{name}1234"] = {
                "filename": name,
                "size": 1234,
                "regions": {str(k): r for k, r in enumerate(regions)} if version == 1 else regions,
                "file_attributes": {},
            }
        doc = entries if version == 1 else {"_via_settings": {}, "_via_img_metadata": entries}
        (root / split / "via_region_data.json").write_text(json.dumps(doc))
    return root


def write_yolo(root: Path, count: int = 4) -> Path:
    rng = np.random.default_rng(7)
    for split, n in (("train", count), ("val", 2)):
        for i in range(n):
            _image(root / "images" / split / f"{i}.png", rng)
            labels = root / "labels" / split / f"{i}.txt"
            labels.parent.mkdir(parents=True, exist_ok=True)
            labels.write_text(
                "0 0.19 0.21 0.62 0.21 0.62 0.62 0.19 0.62\n1 0.5 0.5 0.7 0.5 0.6 0.8\n"
            )
    spec = {
        "path": ".",
        "train": "images/train",
        "val": "images/val",
        "names": {0: "ball", 1: "cube"},
    }
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    return root / "data.yaml"


@pytest.mark.parametrize("version", [1, 2])
def test_via_balloon_layout_trains_instance_and_semantic_recipes(cli, in_tmp, version):
    data = write_via(in_tmp / "via", version)
    source = open_source(str(data), "train", task="instance")
    assert source.class_names == ("background", "ball", "cube") and len(source) == 4
    sample = source.load(0)
    assert [i["label"] for i in sample["instances"]] == [1, 2]
    assert sample["instances"][0]["mask"][20, 26]  # the polygon's inside
    result = cli("train", "mask_rcnn", "--data", data, *TRAIN, *set_flags(TINY_RCNN))
    assert result.exit_code == 0, result.output
    result = cli("train", "fcn8s", "--data", data, *TRAIN, *TINY_FCN)
    assert result.exit_code == 0, result.output
    result = cli("check", "--data", data)
    assert result.exit_code == 0, result.output
    assert "6 images checked: 0 error(s)" in result.output and "cube" in result.output


def test_via_without_attributes_is_one_class_named_after_the_folder(in_tmp):
    data = write_via(in_tmp / "balloon", 2, labels=None)
    source = open_source(str(data), "val", task="instance")
    assert source.class_names == ("background", "balloon")


def test_single_via_file_is_split_by_file_name(in_tmp):
    write_via(in_tmp / "via", 1, count=9)
    single = in_tmp / "via" / "train" / "via_region_data.json"
    train = open_source(str(single), "train", task="instance")
    val = open_source(str(single), "val", task="instance")
    names = {train.name(i) for i in range(len(train))} | {val.name(i) for i in range(len(val))}
    assert len(val) >= 1 and len(train) + len(val) == 9 and len(names) == 9
    assert val.category_ids == train.category_ids


def test_via_attribute_is_chosen_with_set(cli, in_tmp):
    data = write_via(in_tmp / "via", 2)
    for split in ("train", "val"):
        path = data / split / "via_region_data.json"
        doc = json.loads(path.read_text())
        for entry in doc["_via_img_metadata"].values():
            for region in entry["regions"]:
                region["region_attributes"] = {"colour": "red", **region["region_attributes"]}
        path.write_text(json.dumps(doc))
    assert open_source(str(data), "val", task="instance").class_names == ("background", "red")
    result = cli("check", "--data", data, "--set", "via_attribute=kind")
    assert result.exit_code == 0 and "cube" in result.output
    result = cli("check", "--data", data, "--set", "via_atribute=kind")
    assert result.exit_code == 2 and "did you mean via_attribute" in result.output


def test_yolo_segmentation_trains_and_checks(cli, in_tmp):
    data = write_yolo(in_tmp / "yolo")
    source = open_source(str(data), "train", task="instance")
    assert source.class_names == ("background", "ball", "cube")
    ball = source.load(0)["instances"][0]
    assert ball["label"] == 1 and ball["mask"][20, 26] and not ball["mask"][2, 2]
    result = cli("train", "mask_rcnn", "--data", data, *TRAIN, *set_flags(TINY_RCNN))
    assert result.exit_code == 0, result.output
    result = cli("train", "fcn8s", "--data", data.parent, *TRAIN, *TINY_FCN)
    assert result.exit_code == 0, result.output
    assert cli("check", "--data", data).exit_code == 0


def test_check_reads_a_coco_folder_that_train_reads(cli, in_tmp):
    root = in_tmp / "coco"
    rng = np.random.default_rng(3)
    for split in ("train", "val"):
        _image(root / split / "a.jpg", rng)
        doc = {
            "images": [{"id": 1, "file_name": "a.jpg", "height": SIZE[0], "width": SIZE[1]}],
            "categories": [{"id": 7, "name": "thing"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0, "area": 560.0,
                 "bbox": [12, 10, 28, 20], "segmentation": [[12, 10, 40, 10, 40, 30, 12, 30]]},
            ],
        }  # fmt: skip
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    result = cli("check", "--data", root)
    assert result.exit_code == 0, result.output
    assert "2 images checked: 0 error(s)" in result.output and "thing" in result.output


def _edit_via(data: Path, change) -> None:
    path = data / "train" / "via_region_data.json"
    doc = json.loads(path.read_text())
    change(doc["_via_img_metadata"])
    path.write_text(json.dumps(doc))


def _first_region(entries: dict) -> dict:
    return next(iter(entries.values()))["regions"][0]


def _set_shape(shape: dict):
    return lambda entries: _first_region(entries).update(shape_attributes=shape)


VIA_FAULTS = {
    "malformed json": (
        lambda d: (d / "train" / "via_region_data.json").write_text('{"a": [1,'),
        "train/via_region_data.json: ",
    ),
    "polygon of 2 points": (
        lambda d: _edit_via(
            d, _set_shape({"name": "polygon", "all_points_x": [1, 5], "all_points_y": [1, 5]})
        ),
        "image 'train0.jpg' region 0: a polygon needs 3 or more points, got 2",
    ),
    "missing image": (
        lambda d: (d / "train" / "train1.jpg").unlink(),
        "image 'train1.jpg' not found",
    ),
    "point far outside": (
        lambda d: _edit_via(
            d,
            _set_shape({"name": "polygon", "all_points_x": [1, 5, 90], "all_points_y": [1, 5, 9]}),
        ),
        "image 'train0.jpg' region 0: point (90, 9) lies outside the 64x48 image",
    ),
    "label not in the class list": (
        lambda d: (d / "class_names.txt").write_text("_background_\nball\n"),
        "label 'cube' is not in the class list (ball)",
    ),
    "polyline": (
        lambda d: _edit_via(
            d, _set_shape({"name": "polyline", "all_points_x": [1, 5], "all_points_y": [1, 5]})
        ),
        "region 0: a polyline encloses no area",
    ),
}


@pytest.mark.parametrize("fault", sorted(VIA_FAULTS))
def test_bad_via_input_is_one_line_naming_file_and_region(cli, in_tmp, fault):
    data = write_via(in_tmp / "via", 2)
    break_it, expected = VIA_FAULTS[fault]
    break_it(data)
    for args in (["check", "--data", data], ["train", "mask_rcnn", "--data", data, *TRAIN]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
        assert expected in result.output, result.output
    assert not (in_tmp / "runs").exists()


YOLO_FAULTS = {
    "class out of range": ("2 0.1 0.1 0.5 0.1 0.5 0.5", "line 1: class 2 is not in the class list"),
    "two points": ("0 0.1 0.1 0.5 0.5", "a detection box"),
    "odd coordinates": ("0 0.1 0.1 0.5 0.5 0.3", "a polygon needs x y pairs of 3 or more points"),
    "outside": ("0 0.1 0.1 1.5 0.1 0.5 0.5", "point (96, 4.8) lies outside the 64x48 image"),
    "text": ("ball 0.1 0.1 0.5 0.1 0.5 0.5", "line 1: not numbers"),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(YOLO_FAULTS))
def test_bad_yolo_input_is_one_line_naming_the_label_file(cli, in_tmp, fault):
    data = write_yolo(in_tmp / "yolo")
    line, expected = YOLO_FAULTS[fault]
    (in_tmp / "yolo/labels/train/1.txt").write_text(line + "\n")
    result = cli("check", "--data", data)
    assert result.exit_code == 2, result.output
    assert "labels/train/1.txt" in result.output and expected in result.output, result.output


def test_bad_yolo_yaml_and_missing_image(cli, in_tmp):
    data = write_yolo(in_tmp / "yolo")
    data.write_text("train: [images/train\n")
    result = cli("check", "--data", data)
    assert result.exit_code == 2 and "data.yaml: not valid YAML" in result.output
    data = write_yolo(in_tmp / "yolo2")
    spec = yaml.safe_load(data.read_text())
    (data.parent / "val.txt").write_text("images/val/0.png\nimages/val/9.png\n")
    data.write_text(yaml.safe_dump({**spec, "val": "val.txt"}))
    result = cli("check", "--data", data)
    assert result.exit_code == 2 and "image 'images/val/9.png' not found" in result.output


def test_via_project_declared_options_order_the_classes(cli, in_tmp):
    data = write_via(in_tmp / "via", 2)
    for split in ("train", "val"):
        path = data / split / "via_region_data.json"
        doc = json.loads(path.read_text())
        options = {"cube": "", "ball": "", "cone": ""}
        doc["_via_attributes"] = {"region": {"kind": {"type": "dropdown", "options": options}}}
        path.write_text(json.dumps(doc))
    source = open_source(str(data), "val", task="instance")
    assert source.class_names == ("background", "cube", "ball", "cone")
    _edit_via(data, lambda e: _first_region(e)["region_attributes"].update(kind="kite"))
    result = cli("check", "--data", data)
    assert result.exit_code == 2 and "label 'kite' is not in the class list" in result.output


def test_binary_masks_without_class_names_check_and_train(cli, in_tmp):
    """0/255 masks with no class_names.txt: `--set binary=true`, the fix the doctor suggests,
    gives two classes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            _image(in_tmp / "bin" / split / "images" / f"{i}.png", rng)
            mask = np.zeros(SIZE, np.uint8)
            mask[10:30, 12:40] = 255
            (in_tmp / "bin" / split / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask, "L").save(in_tmp / "bin" / split / "masks" / f"{i}.png")
    assert cli("check", "--data", in_tmp / "bin").exit_code == 1  # the doctor's finding
    result = cli("check", "--data", in_tmp / "bin", "--set", "binary=true")
    assert result.exit_code == 0, result.output
    assert "3 images checked: 0 error(s)" in result.output
    flags = ["--data", in_tmp / "bin", *TRAIN, *TINY_FCN, "--set", "binary=true"]
    result = cli("train", "fcn8s", *flags)
    assert result.exit_code == 0, result.output
