"""COCO AP: `segcli eval --gt-json/--pred-json` against pycocotools' COCOeval run here directly,
on generated data with polygons, RLEs, crowd regions and small, medium and large objects."""

import contextlib
import io
import json
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.data.coco import encode_masks
from segcli.metrics.coco import evaluate_results, maskiou_correlation

H, W = 160, 200
# (category, x, y, w, h): small (< 32^2 px), medium and large (> 96^2 px) objects
OBJECTS = [
    [(1, 10, 10, 20, 12), (2, 60, 40, 50, 40), (1, 20, 60, 110, 95)],
    [(2, 5, 5, 25, 25), (3, 100, 20, 60, 70), (1, 40, 100, 18, 20)],
    [(3, 10, 30, 120, 100), (2, 150, 120, 30, 30)],
    [(1, 50, 50, 40, 40)],
]


def box_mask(x, y, w, h, shape=(H, W)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y : y + h, x : x + w] = True
    return mask


def write_dataset(tmp_path):
    """gt.json (polygons, compressed and uncompressed RLE, one crowd region per image) and
    results files: segm only, bbox only, and both keys."""
    rng = np.random.default_rng(0)
    images, anns, segm, bbox = [], [], [], []
    for image_id, objects in enumerate(OBJECTS, start=1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": H, "width": W})
        for k, (cat, x, y, w, h) in enumerate(objects):
            mask = box_mask(x, y, w, h)
            if k % 3 == 0:  # polygon
                seg = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            elif k % 3 == 1:  # compressed RLE
                seg = encode_masks(mask[None])[0]
            else:  # uncompressed RLE (column-major run lengths)
                flat = mask.T.ravel().astype(np.int8)
                change = np.flatnonzero(np.diff(np.r_[0, flat, 0]))
                counts = np.diff(np.r_[0, change, flat.size]).tolist()
                seg = {"size": [H, W], "counts": counts}
            anns.append(_ann(len(anns) + 1, image_id, cat, seg, [x, y, w, h], float(mask.sum())))
            for shift, score in ((int(rng.integers(-4, 5)), rng.random()), (9, rng.random() / 2)):
                pred = box_mask(max(x + shift, 0), max(y + shift // 2, 0), w, h)
                rle = encode_masks(pred[None])[0]
                box = [float(v) for v in mask_utils.toBbox(rle)]
                segm.append(
                    {
                        "image_id": image_id,
                        "category_id": cat,
                        "segmentation": rle,
                        "score": round(float(score), 4),
                    }
                )
                bbox.append(
                    {
                        "image_id": image_id,
                        "category_id": cat,
                        "bbox": box,
                        "score": round(float(score), 4),
                    }
                )
        crowd = encode_masks(box_mask(150, 0, 50, 20)[None])[0]
        anns.append(_ann(len(anns) + 1, image_id, 1, crowd, [150, 0, 50, 20], 1000.0, crowd=1))
        segm.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": 0.99,
                "segmentation": encode_masks(box_mask(152, 2, 40, 15)[None])[0],
            }
        )
        bbox.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": 0.99,
                "bbox": [152.0, 2.0, 40.0, 15.0],
            }
        )
    categories = [{"id": i, "name": n} for i, n in ((1, "cat"), (2, "dog"), (3, "bird"))]
    gt = {"images": images, "annotations": anns, "categories": categories}
    both = [{**s, "bbox": b["bbox"]} for s, b in zip(segm, bbox)]
    paths = {}
    for name, obj in (("gt", gt), ("segm", segm), ("bbox", bbox), ("both", both)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(obj))
    return paths


def _ann(ident, image_id, cat, seg, box, area, crowd=0) -> dict:
    return {
        "id": ident,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": seg,
        "bbox": box,
        "area": area,
        "iscrowd": crowd,
    }


def reference_stats(gt_path, results_path, iou_type) -> list[float]:
    """pycocotools' own numbers, exactly as its README runs it."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(str(results_path)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats[:6]]


KEYS = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")


@pytest.mark.parametrize(
    ("metric", "kind", "results", "iou_type"),
    [("mask-ap", "mask", "segm", "segm"), ("box-ap", "box", "bbox", "bbox")],
)
def test_saved_results_score_exactly_as_pycocotools(cli, tmp_path, metric, kind, results, iou_type):
    paths = write_dataset(tmp_path)
    out = tmp_path / "scores.json"
    result = cli(
        "eval",
        "--gt-json",
        paths["gt"],
        "--pred-json",
        paths[results],
        "--metric",
        metric,
        "--json",
        out,
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    expected = reference_stats(paths["gt"], paths[results], iou_type)
    assert all(0 < v < 1 for v in expected), expected  # every size range is populated
    assert [scores[f"{kind}_{k}"] for k in KEYS] == expected
    assert f"{kind}_ap: {expected[0]:.4f}" in result.output
    assert len(scores[f"{kind}_per_class_ap"]) == 3 and "bird" in result.output


def test_mask_ap_ignores_the_box_of_results_that_have_both(cli, tmp_path):
    """With a bbox key pycocotools' loadRes would take the box area as the mask's area."""
    paths = write_dataset(tmp_path)
    scores = {}
    for name in ("segm", "both"):
        out = tmp_path / f"{name}_scores.json"
        cli("eval", "--gt-json", paths["gt"], "--pred-json", paths[name], "--json", out)
        scores[name] = json.loads(out.read_text())
    assert [scores["both"][f"mask_{k}"] for k in KEYS] == [
        scores["segm"][f"mask_{k}"] for k in KEYS
    ]
    assert scores["both"]["box_ap"] == reference_stats(paths["gt"], paths["bbox"], "bbox")[0]


def test_results_for_unknown_images_name_the_file(cli, tmp_path):
    paths = write_dataset(tmp_path)
    bad = json.loads(paths["segm"].read_text())
    bad[3]["image_id"] = 99
    paths["segm"].write_text(json.dumps(bad))
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["segm"])
    assert result.exit_code == 2
    assert "segm.json: result 3 has image_id 99" in result.output
    assert "Traceback" not in result.output


def test_empty_results_give_zero_ap_with_a_warning(cli, tmp_path):
    paths = write_dataset(tmp_path)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    out = tmp_path / "scores.json"
    result = cli(
        "eval", "--gt-json", paths["gt"], "--pred-json", empty, "--metric", "mask-ap", "--json", out
    )
    assert result.exit_code == 0, result.output
    assert "warning: no detections" in result.output
    assert json.loads(out.read_text())["mask_ap"] == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda gt: "{not json", "gt.json: malformed JSON"),
        (
            lambda gt: {**gt, "annotations": [{**gt["annotations"][0], "category_id": 42}]},
            "gt.json: annotation 1 has unknown category 42",
        ),
        (
            lambda gt: {**gt, "annotations": [{**gt["annotations"][0], "image_id": 7}]},
            "gt.json: annotation 1 points at image 7",
        ),
        (lambda gt: {"images": []}, "gt.json: no 'annotations' list"),
    ],
)
def test_bad_ground_truth_is_one_line(cli, tmp_path, change, message):
    paths = write_dataset(tmp_path)
    changed = change(json.loads(paths["gt"].read_text()))
    paths["gt"].write_text(changed if isinstance(changed, str) else json.dumps(changed))
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["segm"])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_maskiou_correlation_and_plain_ap_known_answer():
    """Detections whose actual IoU is known by construction (shifted squares)."""
    gt_mask = box_mask(20, 20, 40, 40, (100, 100))
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 100, "width": 100}],
        "annotations": [_ann(1, 1, 1, encode_masks(gt_mask[None])[0], [20, 20, 40, 40], 1600.0)],
        "categories": [{"id": 1, "name": "square"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = doc
        gt.createIndex()
    shifts, predicted = (0, 4, 10, 20), (0.9, 0.7, 0.6, 0.2)
    results = []
    for shift, guess in zip(shifts, predicted):
        rle = encode_masks(box_mask(20 + shift, 20, 40, 40, (100, 100))[None])[0]
        results.append(
            {
                "image_id": 1,
                "category_id": 1,
                "segmentation": rle,
                "bbox": [20.0 + shift, 20.0, 40.0, 40.0],
                "mask_iou": guess,
                "cls_score": 1 - guess,
                "score": (1 - guess) * guess,
            }
        )
    actual = [(40 - s) * 40 / (2 * 1600 - (40 - s) * 40) for s in shifts]
    r, count = maskiou_correlation(gt, results)
    assert count == 4 and math.isclose(r, np.corrcoef(predicted, actual)[0, 1], rel_tol=1e-9)
    scores = evaluate_results(gt, results)
    # ranked by the classification score the exact mask comes last: AP drops
    assert scores["mask_ap_plain"] < scores["mask_ap"]
    assert scores["maskiou_pearson"] == r
