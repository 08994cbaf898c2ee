"""segcli scores COCO results with faster-coco-eval: its 12 numbers, per-class AP and
precision-recall curves equal pycocotools' own COCOeval run here, on a generated set with
crowd regions, non-contiguous category ids, images without ground truth, images with ground
truth but no detection, and small, medium and large objects."""

import contextlib
import copy
import io
import warnings

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.data.coco import coco_from_dict, encode_masks
from segcli.metrics.coco import STATS, evaluate_results

H, W = 150, 180
CATEGORIES = {3: "cat", 7: "dog", 42: "bird"}  # ids with gaps, as COCO's own 1..90
# object sides: small (< 32^2 px), medium, large (> 96^2 px)
SIDES = {"small": (6, 30), "medium": (34, 90), "large": (100, 140)}
EMPTY_IMAGES = (5, 11)  # no ground truth (detections there are false positives)
UNDETECTED_IMAGES = (7, 13)  # ground truth, no detection


def generated_set(seed: int = 0, images: int = 16) -> tuple[dict, list[dict]]:
    """(ground-truth document, results with segmentation and bbox)."""
    rng = np.random.default_rng(seed)
    doc = {"images": [], "annotations": [], "categories": []}
    doc["categories"] = [{"id": i, "name": n} for i, n in CATEGORIES.items()]
    results = []
    for image_id in range(1, images + 1):
        doc["images"].append({"id": image_id, "file_name": f"{image_id}.jpg", "height": H,
                              "width": W})  # fmt: skip
        if image_id in EMPTY_IMAGES:
            results += [detection(image_id, rng, random_mask(rng, "medium")) for _ in range(3)]
            continue
        for size in rng.choice(list(SIDES), size=4):
            mask = random_mask(rng, size)
            add_annotation(doc, image_id, int(rng.choice(list(CATEGORIES))), mask, crowd=0)
        crowd = random_mask(rng, "large")
        add_annotation(doc, image_id, 7, crowd, crowd=1)
        if image_id in UNDETECTED_IMAGES:
            continue
        results.append(detection(image_id, rng, crowd & np.roll(crowd, 3, axis=1), 7))
        for ann in [a for a in doc["annotations"] if a["image_id"] == image_id]:
            truth = mask_utils.decode(ann["segmentation"]).astype(bool)
            for shift in rng.integers(-6, 7, size=int(rng.integers(0, 3))):  # 0-2 guesses
                results.append(detection(image_id, rng, np.roll(truth, shift, axis=0),
                                         ann["category_id"]))  # fmt: skip
        results += [detection(image_id, rng, random_mask(rng, "small")) for _ in range(2)]
    return doc, results


def random_mask(rng, size: str) -> np.ndarray:
    """A filled rectangle or ellipse with sides in SIDES[size] (area in that COCO range)."""
    low, high = SIDES[size]
    h, w = (int(v) for v in rng.integers(low, high, size=2))
    if size == "small":
        h, w = min(h, 1000 // w), w  # area under 32^2 whatever the sides
    y, x = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
    mask = np.zeros((H, W), bool)
    if rng.random() < 0.5:
        mask[y : y + h, x : x + w] = True
    else:
        ys, xs = np.mgrid[:H, :W]
        mask = ((ys - y - h / 2) / (h / 2)) ** 2 + ((xs - x - w / 2) / (w / 2)) ** 2 <= 1
    return mask


def add_annotation(doc: dict, image_id: int, category: int, mask: np.ndarray, crowd: int):
    rle = encode_masks(mask[None])[0]
    doc["annotations"].append(
        {
            "id": len(doc["annotations"]) + 1,
            "image_id": image_id,
            "category_id": category,
            "segmentation": rle,
            "area": float(mask.sum()),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": crowd,
        }
    )


def detection(image_id: int, rng, mask: np.ndarray, category: int | None = None) -> dict:
    rle = encode_masks(mask[None])[0]
    box = [round(float(v) + rng.uniform(-2, 2), 2) for v in mask_utils.toBbox(rle)]
    return {
        "image_id": image_id,
        "category_id": category if category is not None else int(rng.choice(list(CATEGORIES))),
        "segmentation": rle,
        "bbox": box[:2] + [max(v, 0.0) for v in box[2:]],
        "score": round(float(rng.random()), 3),
    }


def pycocotools_eval(doc: dict, results: list[dict], iou_type: str) -> COCOeval:
    """pycocotools as its README runs it, on its own copies (it edits what it is given)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(doc)
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def mean_scored(values: np.ndarray, axis) -> np.ndarray:
    """Mean over `axis` of the entries COCOeval scored (it writes -1 where it could not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a slice without ground truth: NaN
        return np.nanmean(np.where(values > -1, values, np.nan), axis=axis)


@pytest.mark.parametrize(("kind", "iou_type"), [("mask", "segm"), ("box", "bbox")])
def test_faster_coco_eval_equals_pycocotools(kind, iou_type):
    doc, results = generated_set()
    # segcli's mask AP rule: a segm evaluation of results without their box (DESIGN.md)
    reference_results = [
        {k: v for k, v in r.items() if k != ("bbox" if kind == "mask" else "segmentation")}
        for r in results
    ]
    reference = pycocotools_eval(doc, reference_results, iou_type)
    stats = np.array(reference.stats[:12])
    # the set reaches every range: each of the 12 numbers is scored, none is trivial
    assert ((stats > 0.05) & (stats < 0.95)).all(), stats
    areas = {size: 0 for size in SIDES}
    for ann in doc["annotations"]:
        areas["small" if ann["area"] < 32**2 else "medium" if ann["area"] < 96**2 else "large"] += 1
    assert min(areas.values()) >= 5, areas

    scores = evaluate_results(coco_from_dict(copy.deepcopy(doc)), results, (kind,))

    found = np.array([scores[f"{kind}_{name}"] for name in STATS])
    assert np.abs(found - stats).max() <= 1e-12, (found, stats)
    precision = reference.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area all, 100 dets
    per_class = mean_scored(precision.reshape(-1, precision.shape[2]), axis=0)
    assert np.allclose(scores[f"{kind}_per_class_ap"], per_class, rtol=0, atol=1e-12)
    for name, t in (("pr50", 0), ("pr75", 5)):  # iouThrs[0] = 0.5, iouThrs[5] = 0.75
        assert np.allclose(scores[f"{kind}_{name}"], mean_scored(precision[t], axis=1),
                           rtol=0, atol=1e-12)  # fmt: skip
    assert len(scores[f"{kind}_pr50"]) == 101


def test_scoring_leaves_the_ground_truth_and_results_as_they_were():
    doc, results = generated_set(seed=1, images=6)
    gt = coco_from_dict(doc)
    before_doc, before_results = copy.deepcopy(doc), copy.deepcopy(results)
    evaluate_results(gt, results)
    assert doc == before_doc and results == before_results
