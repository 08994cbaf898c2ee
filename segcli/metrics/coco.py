"""COCO mask and box AP through pycocotools' COCOeval, as the COCO evaluation server computes it.

Results are COCO result dicts (image_id, category_id, score, bbox xywh, segmentation RLE).
For mask AP the `bbox` key is dropped first (as Detectron2 does): pycocotools' loadRes would
otherwise take the box area as the mask's area and put detections in the wrong size range.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segcli.data.coco import coco_from_dict, encode_masks, quiet, read_coco_json
from segcli.errors import DataError

KINDS = ("mask", "box")
IOU_TYPES = {"mask": "segm", "box": "bbox"}
RESULT_KEYS = {"mask": "segmentation", "box": "bbox"}
# COCOeval.stats[0:6]: AP@[.5:.95], AP50, AP75, AP small, medium, large (100 detections)
STATS = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")
MASK_THRESHOLD = 0.5  # Mask R-CNN section 3: the mask is binarised at 0.5


def detections_to_results(output: dict, image_id: int, category_ids) -> list[dict]:
    """COCO results of one image's detections (numpy arrays as the instance models return:
    boxes [N,4] xyxy, labels [N] in 1..K, scores [N], masks [N,1,H,W] probabilities; optional
    cls_scores [N] and mask_ious [N] from Mask Scoring R-CNN)."""
    boxes = np.asarray(output["boxes"], dtype=np.float64).reshape(-1, 4)
    masks = np.asarray(output["masks"])
    rles = encode_masks(masks[:, 0] >= MASK_THRESHOLD) if len(masks) else []
    results = []
    for i, rle in enumerate(rles):
        x1, y1, x2, y2 = boxes[i].tolist()
        result = {
            "image_id": int(image_id),
            "category_id": int(category_ids[int(output["labels"][i]) - 1]),
            "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)],
            "score": float(output["scores"][i]),
            "segmentation": rle,
        }
        for key, name in (("cls_scores", "cls_score"), ("mask_ious", "mask_iou")):
            if key in output:
                result[name] = float(output[key][i])
        results.append(result)
    return results


def empty_scores(kind: str, num_categories: int) -> dict:
    return {f"{kind}_{s}": 0.0 for s in STATS} | {f"{kind}_per_class_ap": [0.0] * num_categories}


def coco_eval(gt: COCO, results: list[dict], kind: str) -> dict:
    """`{kind}_ap ... {kind}_ap_l` and `{kind}_per_class_ap` (one per gt category, in id
    order; NaN where the category has no ground truth) of `results` against `gt`."""
    cat_ids = sorted(gt.getCatIds())
    if not results:
        return empty_scores(kind, len(cat_ids))
    results = copy.deepcopy(results)  # loadRes writes area, id and iscrowd into them
    if kind == "mask":
        for r in results:
            r.pop("bbox", None)
    with quiet():
        evaluator = COCOeval(gt, gt.loadRes(results), IOU_TYPES[kind])
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    scores = {f"{kind}_{name}": _nan(v) for name, v in zip(STATS, evaluator.stats[:6])}
    # precision [T iou, R recall, K category, A area, M max dets]: area "all", 100 detections
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = [
        float(np.mean(p[p > -1])) if (p > -1).any() else float("nan")
        for p in np.moveaxis(precision, 2, 0)
    ]
    return scores | {f"{kind}_per_class_ap": per_class}


def _nan(value: float) -> float:
    """COCOeval writes -1 where nothing could be scored (no ground truth in that range)."""
    return float("nan") if value == -1 else float(value)


def maskiou_correlation(gt: COCO, results: list[dict]) -> tuple[float, int]:
    """Pearson r between each detection's predicted MaskIoU and its actual mask IoU with the
    best-matching ground-truth instance of its category (0 if none), and the count."""
    predicted, actual = [], []
    for r in results:
        anns = gt.loadAnns(gt.getAnnIds(imgIds=r["image_id"], catIds=r["category_id"]))
        rles = [gt.annToRLE(a) for a in anns if not a.get("iscrowd", 0)]
        ious = mask_utils.iou([r["segmentation"]], rles, [0] * len(rles)) if rles else [0.0]
        predicted.append(r["mask_iou"])
        actual.append(float(np.max(ious)))
    if len(predicted) < 2 or np.std(predicted) == 0 or np.std(actual) == 0:
        return float("nan"), len(predicted)
    return float(np.corrcoef(predicted, actual)[0, 1]), len(predicted)


def evaluate_results(gt: COCO, results: list[dict], kinds=("mask", "box")) -> dict:
    """Mask and/or box AP; with Mask Scoring R-CNN's fields also the MaskIoU correlation and
    the mask AP ranked by the plain classification score (`mask_ap_plain`)."""
    out = {"detections": len(results)}
    for kind in kinds:
        out |= coco_eval(gt, results, kind)
    if results and "mask_iou" in results[0] and "mask" in kinds:
        out["maskiou_pearson"], _ = maskiou_correlation(gt, results)
        plain = [{**r, "score": r["cls_score"]} for r in results]
        out["mask_ap_plain"] = coco_eval(gt, plain, "mask")["mask_ap"]
    return out


def read_results(path: Path) -> list:
    try:
        results = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: results file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise DataError(f"{path}: expected a list of COCO results (objects)")
    return results


def check_results(results: list[dict], path: Path, gt: COCO, kinds) -> None:
    """Every result has what `kinds` needs and points at a gt image and category."""
    needed = ("image_id", "category_id", "score", *(RESULT_KEYS[k] for k in kinds))
    images, categories = set(gt.getImgIds()), set(gt.getCatIds())
    for i, r in enumerate(results):
        if any(key not in r for key in needed):
            raise DataError(f"{path}: result {i} lacks one of {', '.join(needed)}")
        if r["image_id"] not in images:
            raise DataError(
                f"{path}: result {i} has image_id {r['image_id']!r}, which is not in the "
                "ground truth"
            )
        if r["category_id"] not in categories:
            raise DataError(
                f"{path}: result {i} has category_id {r['category_id']!r}, which is not in "
                "the ground truth"
            )


def evaluate_files(gt_json: Path, pred_json: Path, kinds=None) -> tuple[dict, tuple[str, ...]]:
    """Scores of a saved results file against a COCO annotation file (no model), and the
    category names (background first, for the per-category table). `kinds` ("mask", "box")
    defaults to what the results hold (segmentation, bbox)."""
    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt = coco_from_dict(read_coco_json(gt_json))
    results = read_results(pred_json)
    if kinds is None:
        kinds = tuple(k for k in KINDS if all(RESULT_KEYS[k] in r for r in results))
        if not kinds:
            raise DataError(f"{pred_json}: the results have neither segmentation nor bbox")
    check_results(results, pred_json, gt, kinds)
    names = ("background", *(c["name"] for c in gt.loadCats(sorted(gt.getCatIds()))))
    return evaluate_results(gt, results, kinds), names
