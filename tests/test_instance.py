"""The instance task end to end: COCO folders (convert-labelme's and the standard layout), the
augmentation keeping boxes and masks together, and `segcli train/eval/infer` for mask_rcnn."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from segcli.data.coco import ShapesInstances, encode_masks, mask_box
from segcli.data.instance import (
    InstanceImages,
    InstanceSamples,
    image_tensor,
    instance_train_transform,
)
from segcli.data.sources import open_source
from segcli.engine import checkpoint
from segcli.metrics.coco import STATS, detections_to_results
from segcli.recipe import get_recipe
from segcli.tasks import for_recipe

from helpers import TINY_RCNN, run_segcli, set_flags

# A model small enough to train a step in seconds (the quick profile's layout, narrower).
TINY_MODEL = set_flags({**TINY_RCNN, "min_size": 48, "max_size": 64, "rpn_proposals_train": 50,
                        "box_batch_size": 16, "anchor_sizes": (16, 32, 64, 128, 256)})  # fmt: skip
TINY_RUN = ["--iters", "2", "--batch-size", "2", "--workers", "0", "--set", "log_every=1"]


def torchrun(*args, cwd, timeout: float = 300):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", "segcli", *map(str, args)]  # fmt: skip
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def square(h, w, x, y, size) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y : y + size, x : x + size] = True
    return mask


def write_labelme_folder(root, categories=((1, "apple"), (2, "pear"))):
    """What `segcli convert-labelme` writes: annotations.json (COCO, file names under
    JPEGImages/), JPEGImages/, VOC masks, split lists and class_names.txt. Image b has a
    polygon, an RLE object and a crowd region; image c has no object."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    rng = np.random.default_rng(0)
    objects = {"a": [(categories[0][0], 4, 6, 14)], "b": [(categories[1][0], 20, 10, 12),
               (categories[0][0], 2, 20, 10)], "c": []}  # fmt: skip
    images, anns = [], []
    for image_id, (stem, found) in enumerate(objects.items(), start=1):
        rgb = rng.integers(0, 50, (40, 48, 3), dtype=np.uint8)
        label = np.zeros((40, 48), np.uint8)
        for k, (cat, x, y, s) in enumerate(found):
            rgb[y : y + s, x : x + s] = 200
            label[y : y + s, x : x + s] = cat
            poly = [[x, y, x + s, y, x + s, y + s, x, y + s]]
            seg = poly if k == 0 else encode_masks(square(40, 48, x, y, s)[None])[0]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                         "segmentation": seg, "bbox": [x, y, s, s], "area": s * s,
                         "iscrowd": 0})  # fmt: skip
        Image.fromarray(rgb).save(root / "JPEGImages" / f"{stem}.jpg", quality=95)
        Image.fromarray(label).save(root / "SegmentationClass" / f"{stem}.png")
        images.append({"id": image_id, "file_name": f"JPEGImages/{stem}.jpg", "height": 40,
                       "width": 48})  # fmt: skip
    crowd = encode_masks(square(40, 48, 36, 28, 8)[None])[0]
    anns.append(
        {
            "id": len(anns) + 1,
            "image_id": 2,
            "category_id": categories[0][0],
            "segmentation": crowd,
            "bbox": [36, 28, 8, 8],
            "area": 64,
            "iscrowd": 1,
        }
    )
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": i, "name": n} for i, n in categories]}  # fmt: skip
    (root / "annotations.json").write_text(json.dumps(doc))
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("b\nc\n")
    (sets / "val.txt").write_text("a\nb\n")
    (root / "class_names.txt").write_text("_background_\n" + "\n".join(n for _, n in categories))
    return root


def test_labelme_folder_reads_as_coco_for_instance_and_voc_for_semantic(tmp_path):
    root = write_labelme_folder(tmp_path / "converted")
    train = open_source(str(root), "train", task="instance")
    assert train.class_names == ("_background_", "apple", "pear") and len(train) == 2
    b, c = train.load(0), train.load(1)
    assert [i["label"] for i in b["instances"]] == [2, 1]  # the crowd region is left out
    assert b["instances"][0]["mask"].sum() == 144 and b["instances"][0]["box"] == [20, 10, 32, 22]
    assert c["instances"] == [] and c["image"].shape == (40, 48, 3)
    val_gt = open_source(str(root), "val", task="instance").coco()
    assert sorted(val_gt.getImgIds()) == [1, 2] and len(val_gt.getAnnIds(iscrowd=True)) == 1
    semantic = open_source(str(root), "train")
    assert semantic.load(0)["mask"].max() == 2


def test_evaluation_images_are_the_samples_images_without_annotations(tmp_path):
    root = write_labelme_folder(tmp_path / "converted")
    for source in (open_source(str(root), "val", task="instance"), ShapesInstances("val", 48, 3)):
        images = InstanceImages(source)
        assert len(images) == len(source)
        for index in range(len(source)):
            sample = source.load(index)
            image, target = images[index]
            assert torch.equal(image, image_tensor(sample["image"]))
            assert target == {"image_id": sample["image_id"]}
            for instance in sample["instances"]:  # every source gives the box
                assert instance["box"] == pytest.approx(mask_box(instance["mask"]), abs=1)


def test_standard_coco_root_maps_category_ids_both_ways(tmp_path):
    root = tmp_path / "coco"
    write_labelme_folder(root, categories=((3, "apple"), (9, "pear")))
    doc = json.loads((root / "annotations.json").read_text())
    (root / "annotations").mkdir()
    (root / "val2017").mkdir()
    for image in doc["images"]:
        (root / image["file_name"]).rename(root / "val2017" / image["file_name"].split("/")[1])
        image["file_name"] = image["file_name"].split("/")[1]
    (root / "annotations.json").unlink()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    val = open_source(str(root), "val", task="instance")
    assert val.category_ids == (3, 9) and val.class_names[1:] == ("apple", "pear")
    assert [i["label"] for i in val.load(1)["instances"]] == [2, 1]
    found = {
        "boxes": np.array([[1.0, 2, 5, 8]]),
        "labels": np.array([2]),
        "scores": np.array([0.5]),
        "masks": np.ones((1, 1, 40, 48), np.float32),
    }
    (result,) = detections_to_results(found, 2, val.category_ids)
    assert result["category_id"] == 9 and result["bbox"] == [1.0, 2.0, 4.0, 6.0]


def test_flip_and_rescale_keep_boxes_on_their_masks():
    shapes = ShapesInstances("train", 64, 8)
    flip = InstanceSamples(shapes, instance_train_transform((1.0, 1.0), hflip=True))
    mirrored = 0
    for index in range(8):
        image, target = flip[(index, index)]
        plain = shapes.load(index)
        if torch.allclose(image, image_tensor(plain["image"][:, ::-1].copy()), atol=1e-6):
            mirrored += 1
            boxes = [mask_box(i["mask"][:, ::-1]) for i in plain["instances"]]
            assert target["boxes"].tolist() == [pytest.approx(b, abs=1e-4) for b in boxes]
    assert 0 < mirrored < 8
    scaled = InstanceSamples(shapes, instance_train_transform((0.75, 1.25), hflip=True))
    for index in range(8):
        image, target = scaled[(index, 1000 + index)]
        assert torch.equal(image, scaled[(index, 1000 + index)][0])  # the seed decides
        for box, mask in zip(target["boxes"].tolist(), target["masks"].numpy()):
            assert box == pytest.approx(mask_box(mask), abs=1.5)  # the mask is rounded


@pytest.mark.parametrize(("break_it", "message"), [
    (lambda root, doc: (root / "JPEGImages" / "a.jpg").unlink(),
     "annotations.json: image 1 'JPEGImages/a.jpg' not found"),
    (lambda root, doc: doc["annotations"][0].update(category_id=5),
     "annotations.json: annotation 1 has unknown category 5"),
    (lambda root, doc: doc.clear(), "annotations.json: no 'images' list"),
    (lambda root, doc: doc["annotations"][0].pop("area"),
     "annotations.json: annotation 1 lacks area"),
    (lambda root, doc: doc["annotations"][0].update(segmentation=[[4, 6, 18, 6]]),
     "annotations.json: annotation 1: polygon 1 has 4 numbers"),
    (lambda root, doc: doc["annotations"][2]["segmentation"].update(size=[48, 40]),
     "annotations.json: annotation 3: RLE size [48, 40] is not its image's [height, width] "
     "[40, 48]"),
])  # fmt: skip
def test_bad_coco_folder_stops_training_with_one_line(cli, tmp_path, break_it, message):
    root = write_labelme_folder(tmp_path / "converted")
    doc = json.loads((root / "annotations.json").read_text())
    break_it(root, doc)
    (root / "annotations.json").write_text(json.dumps(doc))
    result = cli("train", "mask_rcnn", "--data", root, *TINY_RUN, *TINY_MODEL)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("runs/*/*/metrics.jsonl"))  # before the first step


@pytest.mark.slow
def test_trains_a_step_on_a_coco_folder_with_an_empty_image(cli, tmp_path):
    root = write_labelme_folder(tmp_path / "converted")
    result = cli("train", "mask_rcnn", "--data", root, *TINY_RUN, *TINY_MODEL, "--out", "run")
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert {"loss_mask", "loss_classifier"} <= set(rows[0]) and "mask_ap" in rows[-1]
    # --data on another dataset: the classes must be the checkpoint's, by name too
    other = write_labelme_folder(tmp_path / "other", categories=((1, "apple"), (2, "plum")))
    result = cli("eval", tmp_path / "run" / "last.pt", "--data", other, "--workers", "0")
    assert result.exit_code == 2
    assert "other: class 2 is 'plum' but the checkpoint was trained on 'pear'" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_eval_infer_on_tiny_shapes(cli, in_tmp):
    result = cli("train", "mask_rcnn", "--img-size", "48", "--set", "shapes_train=4", "--set",
                 "shapes_val=2", *TINY_RUN, *TINY_MODEL)  # fmt: skip
    assert result.exit_code == 0, result.output
    run = in_tmp / "runs" / "mask_rcnn" / "1"
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "curves.png",
                 "pr_curve.png", "per_class_ap.png"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not (run / "confusion.png").exists() and len(list((run / "samples").iterdir())) == 2
    assert torch.load(run / "best.pt", weights_only=True)["category_ids"] == [1, 2, 3]

    result = cli("eval", "--metric", "mask-ap", "--save-json", "res.json", "--json", "s.json",
                 "--report", "r.html", "--report-worst", "2", "--plots", "plots")  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = json.loads((in_tmp / "s.json").read_text())
    assert {f"{k}_{s}" for k in ("mask", "box") for s in STATS} <= set(scores)
    assert f"mask_ap: {scores['mask_ap']:.4f}" in result.output
    assert sorted(p.name for p in (in_tmp / "plots").iterdir()) == ["per_class_ap.png",
                                                                    "pr_curve.png"]  # fmt: skip
    page = (in_tmp / "r.html").read_text()
    # 2 plots, then ground truth, prediction and errors of the 2 worst images (the val images)
    assert page.count("<img ") == 2 + 2 * 3 and page.count("mask F1@0.5") == 2
    gt = in_tmp / "gt.json"
    gt.write_text(json.dumps(ShapesInstances("val", 48, 2).coco().dataset))
    again = cli("eval", "--gt-json", gt, "--pred-json", "res.json", "--json", "s2.json")
    assert again.exit_code == 0, again.output
    assert json.loads((in_tmp / "s2.json").read_text())["mask_ap"] == scores["mask_ap"]

    images = in_tmp / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(ShapesInstances("val", 48, 2).load(i)["image"]).save(images / f"{i}.png")
    result = cli("infer", run / "best.pt", images, "--out", "pred", "--splash",
                 "--score-threshold", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("0_overlay.jpg", "0_splash.jpg", "1_overlay.jpg", "results.json"):
        assert (in_tmp / "pred" / name).is_file(), name
    results = json.loads((in_tmp / "pred" / "results.json").read_text())
    assert results
    assert {r["image_id"] for r in results} <= {1, 2}
    assert all(r["file_name"] in ("0", "1") and r["category_id"] in (1, 2, 3) for r in results)
    # one batch of both images: a list of per-image detections with binary masks
    model = checkpoint.restore_model(run / "best.pt", torch.device("cpu"))[0]
    pictures = [ShapesInstances("val", 48, 2).load(i)["image"] for i in range(2)]
    batch = for_recipe(get_recipe("mask_rcnn")).predict(model, pictures, torch.device("cpu"))
    assert isinstance(batch, list) and len(batch) == 2
    for found in batch:
        assert found["masks"].dtype == bool and found["masks"].shape[1:] == (1, 48, 48)
        assert len(found["masks"]) == len(found["scores"]) == len(found["boxes"])


@pytest.mark.distributed
def test_two_process_validation_equals_one_process(tmp_path):
    """torchrun (gloo): each rank predicts its share of 5 val images, the results are gathered,
    and the scores equal `segcli eval` of the same checkpoint in one process."""
    args = ["train", "mask_rcnn", "--img-size", "48", "--set", "shapes_train=4", "--set",
            "shapes_val=5", "--out", "run", *TINY_RUN, *TINY_MODEL]  # fmt: skip
    result = torchrun(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    distributed = [json.loads(r) for r in rows if '"val"' in r][-1]
    single = run_segcli("eval", "run/last.pt", "--json", "one.json", "--workers", "0",
                        cwd=tmp_path)  # fmt: skip
    assert single.returncode == 0, single.stderr
    alone = json.loads((tmp_path / "one.json").read_text())
    assert alone["detections"] == distributed["detections"] > 0 and alone["box_ap"] > 0
    for key in ("mask_ap", "box_ap", "mask_per_class_ap", "box_per_class_ap"):
        assert alone[key] == distributed[key], key
