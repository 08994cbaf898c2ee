"""convert-labelme on generated labelme folders: instances, classes, images, splits, and
training on the result (bad input and faults: test_labelme_errors.py)."""

import base64
import io
import json

import numpy as np
import pytest
from labelme_files import H, W, coco, convert, labelme_file, ok, png, shape, square
from PIL import Image

from segcli.data.labelme.parse import Shape, patch_extent
from segcli.data.labelme.rasterise import MAX_RADIUS, extent_problem, paste_patch

from helpers import TINY_FCN, run_segcli


def test_group_ids_merge_and_instance_ids_follow_labelme(cli, in_tmp):
    labelme_file(in_tmp / "lm", "a", [
        square("person", 1, 1, group_id=7),
        square("person", 30, 1, group_id=7),  # same label and group: one instance
        square("person", 1, 20),  # no group_id: its own instance each
        square("person", 15, 20),
        square("dog", 30, 20, group_id=7),  # same group, other label: another instance
        square("__ignore__", 44, 1),  # takes an id (5), paints 255 / 0
        {**square("person", 44, 20), "shape_type": None},  # null type: a polygon
    ])  # fmt: skip
    ok(convert(cli, "lm"))
    cls, obj = png("out/SegmentationClass/a.png"), png("out/SegmentationObject/a.png")
    assert (in_tmp / "out" / "class_names.txt").read_text() == "_background_\ndog\nperson\n"
    assert [obj[5, 5], obj[5, 35], obj[25, 5], obj[25, 20], obj[25, 35], obj[25, 48]] == [
        1, 1, 2, 3, 4, 6
    ]  # fmt: skip
    assert cls[5, 48] == 255 and obj[5, 48] == 0 and cls[25, 35] == 1 and cls[5, 5] == 2
    annotations = coco(in_tmp / "out")["annotations"]
    assert [a["category_id"] for a in annotations] == [2, 2, 2, 1, 2]
    merged = annotations[0]
    assert len(merged["segmentation"]) == 2 and merged["area"] == 2 * 11 * 11
    assert merged["bbox"] == [1.0, 1.0, 40.0, 11.0] and merged["id"] == 1


def test_numeric_suffix_names_instances(cli, in_tmp):
    labelme_file(in_tmp / "lm", "a", [
        square("person1", 1, 1), square("person1", 15, 1),  # one instance: the suffix names it
        square("person2", 30, 1), square("dog-1", 1, 20),
    ])  # fmt: skip
    (in_tmp / "labels.txt").write_text("person\ndog\n")  # a plain list: background is added
    ok(convert(cli, "lm", "--labels", "labels.txt"))
    assert (in_tmp / "out" / "class_names.txt").read_text() == "_background_\nperson\ndog\n"
    cls, obj = png("out/SegmentationClass/a.png"), png("out/SegmentationObject/a.png")
    assert [cls[5, 5], cls[5, 35], cls[25, 5]] == [1, 1, 2]
    assert [obj[5, 5], obj[5, 20], obj[5, 35], obj[25, 5]] == [1, 1, 2, 3]
    assert [a["category_id"] for a in coco(in_tmp / "out")["annotations"]] == [1, 1, 2]

    # Discovered classes: `car3` stays a class (no plain `car`), `person7` folds into `person`.
    labelme_file(in_tmp / "lm2", "b", [square("person", 1, 1), square("person7", 20, 1),
                                       square("car3", 40, 1)])  # fmt: skip
    ok(convert(cli, "lm2", out="out2"))
    assert (in_tmp / "out2" / "class_names.txt").read_text() == "_background_\ncar3\nperson\n"


def test_labelme_labels_file_and_every_shape_type_kept_as_rle(cli, in_tmp):
    patch = Image.fromarray(np.eye(6, dtype=np.uint8))
    buffer = io.BytesIO()
    patch.save(buffer, format="PNG")
    labelme_file(in_tmp / "lm", "a", [
        shape("cat", [[12, 9], [2, 2]], "rectangle"),  # drawn right to left: corners sorted
        shape("cat", [[30, 10], [34, 13]], "circle"),
        shape("dog", [[40, 30]], "point"),
        shape("dog", [[2, 30], [20, 32]], "line"),
        shape("dog", [[20, 20], [30, 25], [40, 20]], "linestrip"),
        shape("dog", [[44, 2], [54, 4], [52, 12], [42, 10]], "oriented_rectangle"),
        shape("cat", [[20, 2], [25, 7]], "mask", mask=base64.b64encode(buffer.getvalue()).decode()),
    ])  # fmt: skip
    (in_tmp / "labels.txt").write_text("__ignore__\n_background_\ncat\ndog")
    ok(convert(cli, "lm", "--labels", "labels.txt"))
    cls = png("out/SegmentationClass/a.png")
    assert (cls[2:10, 2:13] == 1).all() and cls[1, 2] == 0 and cls[10, 2] == 0
    assert [cls[2 + i, 20 + i] for i in range(6)] == [1] * 6 and cls[2, 21] != 1
    annotations = coco(in_tmp / "out")["annotations"]
    assert len(annotations) == 7
    assert all(set(a["segmentation"]) == {"size", "counts"} for a in annotations)
    assert annotations[0]["area"] == 11 * 8 and annotations[-1]["area"] == 6


def test_instance_outside_the_image_is_left_out_of_coco(cli, in_tmp):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1), square("cat", 100, 100)])
    result = ok(convert(cli, "lm"))
    assert "a.json: instance 'cat' has no pixel inside the image" in result.output
    assert len(coco(in_tmp / "out")["annotations"]) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("__ignore__\ncat\n", "line 2 must be _background_ after __ignore__"),
        ("cat\n\ndog\n", "line 2 is empty"),
        ("cat\ndog\ncat\n", "class 'cat' is listed twice"),
    ],
)
def test_bad_labels_file(cli, in_tmp, text, message):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1)])
    (in_tmp / "labels.txt").write_text(text)
    result = convert(cli, "lm", "--labels", "labels.txt")
    assert result.exit_code == 2 and "labels.txt" in result.stderr and message in result.stderr


def test_mask_patch_integer_bounds_crop_and_clip():
    patch = np.ones((5, 5), bool)
    shape_ = Shape(0, "m", "mask", ((-1.0, 2.0), (1.0, 4.0)), None, patch)
    mask = paste_patch(shape_, 10, 10)  # extent 3 x 3 from the bounds, 1 column off-image
    assert mask.sum() == 6 and mask[2:5, 0:2].all()
    assert patch_extent(shape_.points, patch.shape) == (3, 3)
    assert patch_extent(((-0.5, 2.0), (1.0, 4.0)), patch.shape) == (5, 5)  # the patch's own


def test_circle_radius_is_capped_whatever_the_image_size():
    def circle(rim):
        return Shape(0, "c", "circle", ((10.0, 10.0), rim), None)

    assert extent_problem(circle((10.0, 200.0)), H, W) is None  # partly outside: fine
    assert "radius 290" in extent_problem(circle((10.0, 300.0)), H, W)  # > 4 diagonals
    huge = circle((10.0, MAX_RADIUS + 20.0))  # Pillow's ellipse never returns from ~670,000
    assert "radius" in extent_problem(huge, 100_000, 100_000)


def test_exif_orientation_is_applied_and_checked(cli, in_tmp):
    folder = in_tmp / "lm"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown turned 90 degrees clockwise: 40 wide, 56 tall
    Image.new("RGB", (W, H), (200, 10, 10)).save(folder / "a.jpg", exif=exif)
    record = {"shapes": [square("cat", 2, 40)], "imagePath": "a.jpg", "imageData": None,
              "imageHeight": W, "imageWidth": H}  # fmt: skip
    (folder / "a.json").write_text(json.dumps(record))
    result = ok(convert(cli, "lm"))
    assert "EXIF orientation 6 applied" in result.output
    assert Image.open(in_tmp / "out" / "JPEGImages" / "a.jpg").size == (H, W)
    assert png("out/SegmentationClass/a.png").shape == (W, H)
    assert png("out/SegmentationClass/a.png")[45, 5] == 1

    record |= {"imageHeight": H, "imageWidth": W}  # annotated on the unturned image
    (folder / "a.json").write_text(json.dumps(record))
    result = convert(cli, "lm", out="out2")
    assert result.exit_code == 2 and "after EXIF orientation 6" in result.stderr
    assert not (in_tmp / "out2").exists()


def test_backslash_image_path_and_embedded_image(cli, in_tmp):
    labelme_file(in_tmp / "lm", "a", [square("cat", 1, 1)], image_path="..\\pics\\a.jpg")
    data = base64.b64encode((in_tmp / "pics" / "a.jpg").read_bytes()).decode()
    labelme_file(in_tmp / "lm", "b", [square("cat", 1, 1)], image_path="gone.jpg", imageData=data)
    (in_tmp / "lm" / "gone.jpg").unlink()
    ok(convert(cli, "lm"))
    for stem in ("a", "b"):
        assert png(f"out/SegmentationClass/{stem}.png")[5, 5] == 1


def test_split_is_deterministic_and_workers_change_nothing(cli, in_tmp):
    for i in range(10):
        labelme_file(in_tmp / "lm", f"f{i}", [square("cat", i, 1), square("dog", 30, 20 - i)])
    ok(convert(cli, "lm", "--val-fraction", "0.3", "--seed", "1", out="a"))
    ok(cli("convert-labelme", "lm", "--out", "b", "--val-fraction", "0.3", "--seed", "1",
           "--workers", "2"))  # fmt: skip
    for name in ("annotations.json", "ImageSets/Segmentation/train.txt",
                 "ImageSets/Segmentation/val.txt", "SegmentationObject/f3.png"):  # fmt: skip
        assert (in_tmp / "a" / name).read_bytes() == (in_tmp / "b" / name).read_bytes(), name
    sets = in_tmp / "a" / "ImageSets" / "Segmentation"
    val = (sets / "val.txt").read_text().split()
    assert len(val) == 3 and len((sets / "train.txt").read_text().split()) == 7
    assert (in_tmp / "b" / "SegmentationClassVisualization" / "f0.jpg").is_file()


def test_default_output_beside_the_folder_in_a_real_process(tmp_path):
    labelme_file(tmp_path / "lm", "a", [square("cat", 1, 1)])
    result = run_segcli("convert-labelme", "lm", "--workers", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "files/s" in result.stdout and "instances: cat" in result.stdout
    assert (tmp_path / "lm_converted" / "SegmentationClass" / "a.png").is_file()


def test_train_fcn8s_on_the_converted_folder(cli, in_tmp):
    for i in range(4):
        labelme_file(in_tmp / "lm", f"f{i}", [square("cat", 2 + i, 3), square("dog", 30, 20)])
    ok(convert(cli, "lm"))
    result = cli("train", "fcn8s", "--data", "out", "--iters", "1", "--img-size", "32",
                 "--batch-size", "2", "--workers", "0", *TINY_FCN)  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    assert "cat" in result.output and "dog" in result.output


def test_train_mask_rcnn_on_the_converted_folder(cli, in_tmp):
    for i in range(4):
        labelme_file(in_tmp / "lm", f"f{i}", [square("cat", 2 + i, 3, 14), square("dog", 30, 20)])
    ok(convert(cli, "lm"))
    tiny = {"backbone": "resnet18", "fpn_channels": 16, "min_size": 32, "max_size": 32,
            "rpn_proposals_train": 20, "rpn_proposals_test": 10, "box_batch_size": 8,
            "box_head_channels": 16, "mask_head_channels": 8, "warmup_iters": 0}  # fmt: skip
    sets = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value!r}")]
    result = cli("train", "mask_rcnn", "--data", "out", "--iters", "1", "--img-size", "32",
                 "--batch-size", "2", "--workers", "0", *sets)  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    assert "mask AP" in result.output and "dog" in result.output
