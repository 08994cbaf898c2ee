"""COCO mask and box AP and AR, as the COCO evaluation server computes them.

Scored by faster-coco-eval's COCOeval_faster (pycocotools' algorithm in C++, the same numbers:
tests/test_coco_scorer.py and tests/test_coco.py compare the two); pycocotools stays for the
ground truth the data reads and for RLE utilities.

Results are COCO result dicts (image_id, category_id, score, bbox xywh, segmentation RLE).

Mask AP rule (Detectron2's, kept for checkpoints and for saved results files alike): the
`bbox` key is dropped from every result before `loadRes` for the segm evaluation. pycocotools'
loadRes keeps a result's own `bbox` and, when one is present, takes the detection's area from
the box (w x h) instead of the mask, which moves detections between the small, medium and large
ranges and so changes APs, APm and APl (AP, AP50 and AP75 stay the same). Without the box,
loadRes takes the area from the mask: the numbers equal pycocotools' on a results file in
COCO's segm format (which has no bbox), i.e. `COCOeval(gt, gt.loadRes(results without bbox),
"segm")`. Box AP uses the boxes as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path

import faster_coco_eval
import numpy as np
from pycocotools.coco import COCO

from segcli.data.coco import (
    coco_from_dict,
    encode_masks,
    is_box,
    is_number,
    read_coco_json,
    rle_problem,
)
from segcli.errors import DataError
from segcli.io import read_json
from segcli.progress import steps

KINDS = ("mask", "box")
IOU_TYPES = {"mask": "segm", "box": "bbox"}
RESULT_KEYS = {"mask": "segmentation", "box": "bbox"}
# COCOeval.stats, the 12 numbers COCO reports: AP@[.5:.95], AP50, AP75, AP small, medium,
# large (100 detections), AR with 1, 10, 100 detections, AR small, medium, large (100)
STATS = (
    "ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l", "ar1", "ar10", "ar100", "ar_s", "ar_m", "ar_l",
)  # fmt: skip
# Precision-recall curves carried out of the evaluation (for pr_curve.png): COCOeval's
# interpolated precision at each of its 101 recall points, area "all", 100 detections, mean
# over the categories that have ground truth; one list per IoU threshold.
PR_IOUS = {"pr50": 0.5, "pr75": 0.75}
RECALL_POINTS = 101  # COCOeval's recall thresholds 0, 0.01, ..., 1
MASK_THRESHOLD = 0.5  # Mask R-CNN section 3: the mask is binarised at 0.5
DETECTION_KEYS = ("boxes", "labels", "scores", "masks")  # what every instance model returns
# A result's `mask_score`, where a model gives one per detection (`mask_scores`), ranks the
# masks for mask AP while `score` ranks the boxes (Mask Scoring R-CNN section 3.3).
MASK_SCORE = "mask_score"
log = logging.getLogger(__name__)


def detections_to_results(output: dict, image_id: int, category_ids) -> list[dict]:
    """COCO results of one image's detections (numpy arrays as the instance models return:
    boxes [N,4] xyxy, labels [N] in 1..K, scores [N], masks [N,1,H,W] probabilities). Any
    further output, one number per detection, goes into each result under its singular name
    (`mask_scores` [N] -> `mask_score`), for the scorers and a recipe's extra_metrics."""
    boxes = np.asarray(output["boxes"], dtype=np.float64).reshape(-1, 4)
    masks = np.asarray(output["masks"])
    rles = encode_masks(masks[:, 0] >= MASK_THRESHOLD) if len(masks) else []
    extra = {key.removesuffix("s"): output[key] for key in output if key not in DETECTION_KEYS}
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
        for name, values in extra.items():
            result[name] = float(values[i])
        results.append(result)
    return results


def empty_scores(kind: str, num_categories: int) -> dict:
    """coco_eval's result without detections: every number 0, precision 0 at every recall."""
    curves = {f"{kind}_{name}": [0.0] * RECALL_POINTS for name in PR_IOUS}
    return (
        {f"{kind}_{s}": 0.0 for s in STATS}
        | {f"{kind}_per_class_ap": [0.0] * num_categories}
        | curves
    )


def coco_eval(gt: COCO, results: list[dict], kind: str) -> dict:
    """`{kind}_ap ... {kind}_ar_l` (STATS), `{kind}_per_class_ap` (one per gt category, in id
    order; NaN where the category has no ground truth) and the precision-recall curves
    `{kind}_pr50`, `{kind}_pr75` (PR_IOUS) of `results` against `gt`."""
    cat_ids = sorted(gt.getCatIds())
    if not results:
        return empty_scores(kind, len(cat_ids))
    results = [_scored_as(r, kind) for r in results]
    scoring_gt = _scoring_coco(gt.dataset)
    with steps(f"COCO {kind} scoring", 3) as bar:
        evaluator = faster_coco_eval.COCOeval_faster(
            scoring_gt, scoring_gt.loadRes(results), IOU_TYPES[kind], print_function=log.debug
        )
        evaluator.evaluate()
        bar.advance(status="matched")
        evaluator.accumulate()
        bar.advance(status="accumulated")
        evaluator.summarize()
        bar.advance()
    scores = {f"{kind}_{name}": _nan(v) for name, v in zip(STATS, evaluator.stats[:12])}
    # precision [T iou, R recall, K category, A area, M max dets]: area "all", 100 detections
    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]
    per_class = [_mean_scored(p) for p in np.moveaxis(precision, 2, 0)]
    curves = {
        f"{kind}_{name}": [
            _mean_scored(row) for row in precision[_iou_index(evaluator.params.iouThrs, iou)]
        ]
        for name, iou in PR_IOUS.items()
    }
    return scores | {f"{kind}_per_class_ap": per_class} | curves


def _scored_as(result: dict, kind: str) -> dict:
    """A shallow copy of `result` as COCOeval scores it for `kind`: for masks without the
    `bbox` (module docstring) and ranked by the `mask_score` where it has one. loadRes and
    COCOeval set top-level keys of each result (area, id, iscrowd; for segm the bbox): the
    copy keeps the caller's result as it was."""
    if kind == "box":
        return dict(result)
    copy = {k: v for k, v in result.items() if k != "bbox"}
    if MASK_SCORE in copy:
        copy["score"] = copy[MASK_SCORE]
    return copy


def _scoring_coco(doc: dict) -> faster_coco_eval.COCO:
    """faster-coco-eval's COCO of a ground-truth document, on copies of its annotations."""
    coco = faster_coco_eval.COCO(print_function=log.debug)
    coco.dataset = {**doc, "annotations": [dict(a) for a in doc["annotations"]]}
    coco.createIndex()
    return coco


def _iou_index(thresholds, iou: float) -> int:
    return int(np.flatnonzero(np.isclose(thresholds, iou))[0])


def _mean_scored(values: np.ndarray) -> float:
    """The mean of COCOeval's entries that hold a value (it writes -1 where none), else NaN."""
    scored = values[values > -1]
    return float(scored.mean()) if scored.size else float("nan")


def _nan(value: float) -> float:
    """COCOeval writes -1 where nothing could be scored (no ground truth in that range)."""
    return float("nan") if value == -1 else float(value)


def optional_keys(results: list[dict]) -> list[str]:
    """MASK_SCORE if any of `results` carries it (then every result must)."""
    return [MASK_SCORE] if any(MASK_SCORE in r for r in results) else []


def evaluate_results(gt: COCO, results: list[dict], kinds=("mask", "box")) -> dict:
    """Mask and/or box AP of `results` against `gt` and their count (`detections`)."""
    out = {"detections": len(results)}
    for kind in kinds:
        out |= coco_eval(gt, results, kind)
    return out


def read_results(path: Path) -> list:
    results = read_json(path, "COCO results file")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise DataError(f"{path}: expected a list of COCO results (objects)")
    return results


def check_results(results: list[dict], path: Path, gt: COCO, kinds) -> None:
    """Every result has what `kinds` needs, in the form loadRes and COCOeval take, and points
    at a gt image and category. A MASK_SCORE on any result (with mask AP asked for) is needed
    on every result."""
    needed = ("image_id", "category_id", "score", *(RESULT_KEYS[k] for k in kinds))
    extra = tuple(optional_keys(results)) if "mask" in kinds else ()
    needed += extra
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt.dataset["images"]}
    categories = set(gt.getCatIds())
    for i, r in enumerate(results):
        missing = [key for key in needed if key not in r]
        if missing and set(missing) <= set(extra):
            raise DataError(
                f"{path}: result {i} lacks {' and '.join(missing)}, which other results have "
                f"({' and '.join(extra)} go on every result or none)"
            )
        if missing:
            raise DataError(
                f"{path}: result {i} lacks {', '.join(missing)} (needs {', '.join(needed)})"
            )
        problem = _result_problem(r, needed, sizes, categories, kinds)
        if problem:
            raise DataError(f"{path}: result {i} {problem}")


def _result_problem(r: dict, needed, sizes: dict, categories: set, kinds) -> str | None:
    """What is wrong with one result that has every `needed` key (the text after "result i")."""
    if not _known(r["image_id"], sizes):
        return f"has image_id {r['image_id']!r}, which is not in the ground truth"
    if not _known(r["category_id"], categories):
        return f"has category_id {r['category_id']!r}, which is not in the ground truth"
    for key in ("score", MASK_SCORE):
        if key in needed and not is_number(r[key]):
            return f"has {key} {r[key]!r}, which is not a number"
    if "mask" in kinds:
        segmentation = r["segmentation"]
        if not isinstance(segmentation, dict):
            return "has a polygon segmentation; results take a compressed RLE (pycocotools)"
        problem = rle_problem(segmentation, sizes[r["image_id"]], result=True)
        if problem:
            return f"has a bad segmentation: {problem}"
    if "box" in kinds and not is_box(r["bbox"]):
        return f"has bbox {r['bbox']!r}, which is not [x, y, width, height]"
    return None


def _known(value, ids) -> bool:
    try:
        return value in ids
    except TypeError:  # an unhashable id (a list or an object)
        return False


def read_result_files(gt_json: Path, pred_json: Path, kinds=None):
    """(ground truth COCO, checked results, kinds, category names with background first) of
    a saved results file and its COCO annotation file. `kinds` ("mask", "box") defaults to
    what the results hold (segmentation, bbox)."""
    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt = coco_from_dict(read_coco_json(gt_json))
    results = read_results(pred_json)
    if kinds is None:
        kinds = tuple(k for k in KINDS if all(RESULT_KEYS[k] in r for r in results))
        if not kinds:
            raise DataError(f"{pred_json}: the results have neither segmentation nor bbox")
    check_results(results, pred_json, gt, kinds)
    names = ("background", *(c["name"] for c in gt.loadCats(sorted(gt.getCatIds()))))
    return gt, results, kinds, names
