"""COCO AP: `segcli eval --gt-json/--pred-json` against pycocotools' COCOeval run here directly,
on generated data with polygons, RLEs, crowd regions and small, medium and large objects."""

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.data.coco import encode_masks
from segcli.errors import DataError
from segcli.metrics.coco import STATS, detections_to_results, evaluate_results
from segcli.recipes.nets.ms_rcnn_metrics import (
    actual_mask_ious,
    extra_metrics,
    maskiou_scores,
    pearson,
)

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
    return [float(v) for v in evaluator.stats[:12]]


KEYS = STATS  # the 12 numbers: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl


def assert_same_numbers(found, expected) -> None:
    """faster-coco-eval sums in another order than pycocotools: equal to the last bits."""
    assert np.allclose(found, expected, rtol=0, atol=1e-12), (found, expected)


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
    assert_same_numbers([scores[f"{kind}_{k}"] for k in KEYS], expected)
    assert f"{kind}_ap: {expected[0]:.4f}" in result.output
    assert len(scores[f"{kind}_per_class_ap"]) == 3 and "bird" in result.output


def disc(cx, cy, r, shape) -> np.ndarray:
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def box_rule_dataset(tmp_path):
    """Discs (small, medium, large ground truth, each found by a slightly shifted disc) and
    a confident false positive: a thin diagonal line, whose mask is small (< 32^2 px) but
    whose box is large (> 96^2 px). Returns the gt path and the results with their bbox."""
    shape = (300, 300)
    line = np.zeros(shape, bool)
    for x in range(10, 120):
        line[max(x - 1, 0) : x + 2, x] = True
    images = [{"id": 1, "file_name": "1.jpg", "height": shape[0], "width": shape[1]}]
    anns, results = [], []
    for cx, cy, r, score in ((250, 250, 12, 0.9), (70, 230, 40, 0.8), (200, 90, 70, 0.7)):
        truth, found = disc(cx, cy, r, shape), disc(cx + 1, cy, r, shape)
        rle = encode_masks(truth[None])[0]
        box = [float(v) for v in mask_utils.toBbox(rle)]
        anns.append(_ann(len(anns) + 1, 1, 1, rle, box, float(truth.sum())))
        results.append(_result(found, score))
    results.append(_result(line, 0.95))
    assert line.sum() < 32**2 < np.prod(results[-1]["bbox"][2:]) and 96**2 < np.prod(
        results[-1]["bbox"][2:]
    )
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "disc"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    return tmp_path / "gt.json", results


def _result(mask, score) -> dict:
    rle = encode_masks(mask[None])[0]
    box = [float(v) for v in mask_utils.toBbox(rle)]
    return {"image_id": 1, "category_id": 1, "segmentation": rle, "bbox": box, "score": score}


def pycocotools_segm(gt_path, results) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats[:12]]


def test_mask_ap_drops_the_box_of_results_that_have_one(cli, tmp_path):
    """segcli's mask AP of results with a bbox equals pycocotools on the same results without
    it (COCO's segm format); pycocotools fed the bbox would size the line by its box."""
    gt_path, results = box_rule_dataset(tmp_path)
    pred = tmp_path / "both.json"
    pred.write_text(json.dumps(results))
    out = tmp_path / "scores.json"
    result = cli("eval", "--gt-json", gt_path, "--pred-json", pred, "--metric", "mask-ap",
                 "--json", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = [json.loads(out.read_text())[f"mask_{k}"] for k in KEYS]
    without_box = pycocotools_segm(gt_path, [{k: v for k, v in r.items() if k != "bbox"}
                                             for r in results])  # fmt: skip
    with_box = pycocotools_segm(gt_path, results)
    assert_same_numbers(scores, without_box)
    assert without_box[:3] == with_box[:3]  # the size ranges alone differ
    # by its mask the line is a small false positive; by its box, a large one
    assert without_box[3] < with_box[3] and without_box[5] > with_box[5], (without_box, with_box)


def test_box_only_results_default_to_box_ap(cli, tmp_path):
    paths = write_dataset(tmp_path)
    out = tmp_path / "scores.json"
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["bbox"], "--json", out)
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    expected = reference_stats(paths["gt"], paths["bbox"], "bbox")
    assert "mask_ap" not in scores
    assert_same_numbers([scores[f"box_{k}"] for k in KEYS], expected)
    assert f"box_ap: {expected[0]:.4f}" in result.output


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
        *[
            (lambda gt, key=key: first(gt, drop=key), f"gt.json: annotation {ident} lacks {key}")
            for key, ident in (("id", "at index 0"), ("iscrowd", 1), ("area", 1), ("bbox", 1))
        ],
        (
            lambda gt: first(gt, segmentation=[]),
            "gt.json: annotation 1: segmentation is an empty list",
        ),
        (
            lambda gt: first(gt, segmentation=[[10, 10, 30, 10]]),
            "gt.json: annotation 1: polygon 1 has 4 numbers",
        ),
        (
            lambda gt: first(gt, segmentation=[[10, 10, 30, 10, 30, 22, 10]]),
            "gt.json: annotation 1: polygon 1 has 7 numbers",
        ),
        (
            lambda gt: first(gt, segmentation={"size": [H + 1, W], "counts": [(H + 1) * W]}),
            f"gt.json: annotation 1: RLE size [{H + 1}, {W}] is not its image's [height, "
            f"width] [{H}, {W}]",
        ),
        (
            lambda gt: first(gt, segmentation={"size": [H, W], "counts": "0"}),
            f"gt.json: annotation 1: RLE counts add up to 0, not height x width = {H * W}",
        ),
    ],
)
def test_bad_ground_truth_is_one_line(cli, tmp_path, change, message):
    paths = write_dataset(tmp_path)
    changed = change(json.loads(paths["gt"].read_text()))
    paths["gt"].write_text(changed if isinstance(changed, str) else json.dumps(changed))
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["segm"])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def first(gt: dict, drop: str | None = None, **changes) -> dict:
    """The ground truth with only its first annotation, changed."""
    ann = {k: v for k, v in gt["annotations"][0].items() if k != drop} | changes
    return {**gt, "annotations": [ann]}


def test_bad_ground_truth_fails_when_loaded_not_when_scored(tmp_path):
    """The loader checks what COCOeval reads later (area, iscrowd, the RLE's size), so a
    training run stops before its first step."""
    from segcli.data.coco import read_coco_json

    paths = write_dataset(tmp_path)
    doc = json.loads(paths["gt"].read_text())
    doc["annotations"][-1]["segmentation"]["size"] = [W, H]  # the last image's crowd region
    paths["gt"].write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"gt.json: annotation \d+: RLE size \[200, 160\]"):
        read_coco_json(paths["gt"])


def test_folders_in_place_of_json_files_are_one_line(cli, tmp_path):
    paths = write_dataset(tmp_path)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    for gt, pred, message in (
        (folder, paths["segm"], "folder.json: is a folder, not a COCO annotation file"),
        (paths["gt"], folder, "folder.json: is a folder, not a COCO results file"),
    ):
        result = cli("eval", "--gt-json", gt, "--pred-json", pred)
        assert result.exit_code == 2
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def with_mask_scores(results: list[dict]) -> list[dict]:
    return [{**r, "mask_iou": 0.5, "mask_score": r["score"] / 2} for r in results]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda res: [{**res[0], "segmentation": [[10, 10, 30, 10, 30, 22]]}, *res[1:]],
            "segm.json: result 0 has a polygon segmentation; results take a compressed RLE",
        ),
        (
            lambda res: [*res[:2], {**res[2], "score": "high"}, *res[3:]],
            "segm.json: result 2 has score 'high', which is not a number",
        ),
        (
            lambda res: [*res[:2], {**res[2], "score": None}, *res[3:]],
            "segm.json: result 2 has score None, which is not a number",
        ),
        (
            lambda res: [
                {**res[0], "segmentation": encode_masks(np.ones((1, 10, 10), bool))[0]},
                *res[1:],
            ],  # fmt: skip
            f"segm.json: result 0 has a bad segmentation: RLE size [10, 10] is not its image's "
            f"[height, width] [{H}, {W}]",
        ),
        (
            lambda res: [
                {**res[0], "segmentation": {"size": [H, W], "counts": [H * W]}},
                *res[1:],
            ],  # fmt: skip
            "segm.json: result 0 has a bad segmentation: RLE counts must be a string",
        ),
        (
            lambda res: [
                *with_mask_scores(res[:3]),
                {**with_mask_scores(res[3:4])[0], "mask_score": None},
                *with_mask_scores(res[4:]),
            ],
            "segm.json: result 3 has mask_score None, which is not a number",
        ),
        (
            lambda res: [
                *with_mask_scores(res[:3]),
                {k: v for k, v in with_mask_scores(res[3:4])[0].items() if k != "mask_score"},
                *with_mask_scores(res[4:]),
            ],
            "segm.json: result 3 lacks mask_score, which other results have",
        ),
    ],
)
def test_bad_results_are_one_line(cli, tmp_path, change, message):
    paths = write_dataset(tmp_path)
    paths["segm"].write_text(json.dumps(change(json.loads(paths["segm"].read_text()))))
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["segm"])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def slow_actual_mask_ious(gt: COCO, results: list[dict]) -> np.ndarray:
    """The per-detection reference: one getAnnIds, annToRLE and one-row iou per result."""
    actual = []
    for r in results:
        anns = gt.loadAnns(gt.getAnnIds(imgIds=r["image_id"], catIds=r["category_id"]))
        rles = [gt.annToRLE(a) for a in anns if not a.get("iscrowd", 0)]
        ious = mask_utils.iou([r["segmentation"]], rles, [0] * len(rles)) if rles else [0.0]
        actual.append(float(np.max(ious)))
    return np.array(actual)


def test_grouped_actual_mask_ious_equal_the_per_detection_ones(tmp_path):
    """Several images and categories, crowd regions, and detections of a category that the
    image lacks (actual IoU 0), in an interleaved order."""
    paths = write_dataset(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(paths["gt"]))
    rng = np.random.default_rng(3)
    results = json.loads(paths["segm"].read_text())
    results += [{**r, "image_id": 4, "category_id": 3} for r in results[:3]]
    results = [{**r, "mask_iou": float(rng.random())} for r in results]
    results = [results[i] for i in rng.permutation(len(results))]
    actual = actual_mask_ious(gt, results)
    slow = slow_actual_mask_ious(gt, results)
    assert actual.shape == (len(results),) and np.array_equal(actual, slow)
    assert (actual == 0).any() and (actual > 0).any()  # unmatched and matched detections
    predicted = np.array([r["mask_iou"] for r in results])
    r = pearson(predicted, actual)
    assert r == float(np.corrcoef(predicted, slow)[0, 1]) and not math.isnan(r)
    assert maskiou_scores(gt, results)["maskiou_pearson_all"] == r


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
                "score": 1 - guess,
                "mask_score": (1 - guess) * guess,
            }
        )
    actual = [(40 - s) * 40 / (2 * 1600 - (40 - s) * 40) for s in shifts]
    found = actual_mask_ious(gt, results)
    assert np.allclose(found, actual, rtol=1e-12, atol=0)
    r = pearson(np.array(predicted), found)
    assert math.isclose(r, np.corrcoef(predicted, actual)[0, 1], rel_tol=1e-9)
    before = copy.deepcopy(results)
    scores = evaluate_results(gt, results) | extra_metrics(gt, results)
    assert results == before  # scoring leaves the caller's results as they were
    # ranked by the classification score the exact mask comes last: AP drops
    assert scores["mask_ap_plain"] < scores["mask_ap"]
    # boxes are ranked by the classification score whatever the mask scores say
    plain = [{k: v for k, v in r.items() if k != "mask_score"} for r in results]
    assert scores["box_ap"] == evaluate_results(gt, plain)["box_ap"]
    assert (
        scores["box_ap"]
        < evaluate_results(gt, [{**r, "score": r["mask_score"]} for r in results])["box_ap"]
    )
    assert scores["maskiou_pearson_all"] == r
    # shifts 0, 4 and 10 overlap the object with IoU >= 0.5 (1, 0.82, 0.6); 20 does not (0.33)
    matched = [0, 1, 2]
    expected = np.corrcoef([predicted[i] for i in matched], [actual[i] for i in matched])[0, 1]
    assert scores["maskiou_matched"] == 3
    assert math.isclose(scores["maskiou_pearson"], expected, rel_tol=1e-9)
    keep = found >= 0.5
    assert int(keep.sum()) == 3 and list(np.flatnonzero(keep)) == matched
    assert pearson(np.array(predicted)[keep], found[keep]) == scores["maskiou_pearson"]


def test_optional_outputs_become_result_keys():
    """A model's mask_scores and mask_ious reach the results; the detection score stays."""
    found = {
        "boxes": np.array([[1.0, 2, 5, 8]]),
        "labels": np.array([1]),
        "scores": np.array([0.8]),
        "masks": np.ones((1, 1, 10, 10), np.float32),
        "mask_scores": np.array([0.2]),
        "mask_ious": np.array([0.25]),
    }
    (result,) = detections_to_results(found, 1, (7,))
    assert (result["score"], result["mask_score"], result["mask_iou"]) == (0.8, 0.2, 0.25)


def test_saved_results_with_mask_ious_get_the_recipes_extra_metrics(cli, tmp_path):
    """`eval --gt-json` applies every recipe's extra_metrics: MS R-CNN's MaskIoU correlation
    and plain mask AP reach the table and --json; a missing mask_iou is one line."""
    paths = write_dataset(tmp_path)
    results = json.loads(paths["segm"].read_text())
    rng = np.random.default_rng(5)
    scored = [{**r, "mask_iou": float(rng.random()), "mask_score": r["score"] / 2} for r in results]
    paths["segm"].write_text(json.dumps(scored))
    out = tmp_path / "scores.json"
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["segm"], "--json", out)
    assert result.exit_code == 0, result.output
    assert "MaskIoU vs actual IoU" in result.output
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(paths["gt"]))
    saved = json.loads(out.read_text())
    expected = maskiou_scores(gt, scored)
    assert saved["maskiou_pearson_all"] == pytest.approx(expected["maskiou_pearson_all"])
    assert saved["mask_ap_plain"] == pytest.approx(extra_metrics(gt, scored)["mask_ap_plain"])
    assert "notes" not in saved
    paths["segm"].write_text(json.dumps([scored[0], {**scored[1], "mask_iou": "x"}]))
    result = cli("eval", "--gt-json", paths["gt"], "--pred-json", paths["segm"])
    assert result.exit_code == 2
    assert "segm.json: result 1 has mask_iou 'x', which is not a number" in result.output
