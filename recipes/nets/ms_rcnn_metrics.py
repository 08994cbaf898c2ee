"""Mask Scoring R-CNN's extra evaluation (Huang et al., arXiv:1903.00241; declared as the
recipe's `extra_metrics` in segcli.recipes.ms_rcnn): how well the predicted MaskIoU follows the
actual IoU, and the mask AP without the MaskIoU re-scoring. Torch-free (numpy, pycocotools):
`segcli eval --gt-json` applies it to saved results too.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segcli.errors import DataError
from segcli.metrics.coco import MASK_SCORE, coco_eval
from segcli.report.instance import NOTES

MASK_IOU = "mask_iou"  # result key of the model's `mask_ious` output (segcli.metrics.coco)
# Section 3.3: the MaskIoU head is trained on positive RoIs only (IoU with a ground truth over
# 0.5), so its prediction means something for detections that match an object and nothing for
# a false positive; the correlation is reported over both populations.
MATCHED_IOU = 0.5


def actual_mask_ious(gt: COCO, results: list[dict]) -> np.ndarray:
    """Each detection's mask IoU [N] with the best-matching non-crowd ground-truth instance of
    its category (0 if none). Detections are grouped by (image, category): the ground truth
    is converted once and one `iou` call scores the whole group."""
    actual = np.zeros(len(results))
    groups = defaultdict(list)
    for i, r in enumerate(results):
        groups[r["image_id"], r["category_id"]].append(i)
    for (image_id, category_id), members in groups.items():
        anns = gt.loadAnns(gt.getAnnIds(imgIds=image_id, catIds=category_id))
        rles = [gt.annToRLE(a) for a in anns if not a.get("iscrowd", 0)]
        if rles:
            masks = [results[i]["segmentation"] for i in members]
            actual[members] = np.max(mask_utils.iou(masks, rles, [0] * len(rles)), axis=1)
    return actual


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of x and y; NaN with fewer than 2 values or a constant one."""
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def maskiou_scores(gt: COCO, results: list[dict]) -> dict:
    """`maskiou_pearson` over matched detections (IoU >= 0.5, what the head is trained on) with
    their count `maskiou_matched`, and `maskiou_pearson_all` over every detection."""
    predicted = np.array([r[MASK_IOU] for r in results], dtype=np.float64)
    actual = actual_mask_ious(gt, results)
    matched = actual >= MATCHED_IOU
    return {
        "maskiou_pearson": pearson(predicted[matched], actual[matched]),
        "maskiou_matched": int(matched.sum()),
        "maskiou_pearson_all": pearson(predicted, actual),
    }


def mask_ap_plain(gt: COCO, results: list[dict]) -> float:
    """Mask AP of `results` ranked by the detection score alone (without the mask score)."""
    plain = [{k: v for k, v in r.items() if k != MASK_SCORE} for r in results]
    return coco_eval(gt, plain, "mask")["mask_ap"]


def extra_metrics(gt: COCO, results: list[dict]) -> dict:
    """The recipe's extra scores of COCO `results` against `gt`, with their report lines under
    NOTES: with mask scores `mask_ap_plain`, with predicted MaskIoUs `maskiou_scores`; nothing
    for results that have neither (another model's)."""
    out, notes = {}, []
    if any(MASK_IOU in r for r in results):
        _check_mask_ious(results)
        out |= maskiou_scores(gt, results)
        notes.append(
            f"MaskIoU vs actual IoU: Pearson r {_fmt(out['maskiou_pearson'])} over the "
            f"{out['maskiou_matched']} detections matching an object (IoU >= 0.5), "
            f"{_fmt(out['maskiou_pearson_all'])} over all"
        )
    if any(MASK_SCORE in r for r in results):
        out["mask_ap_plain"] = mask_ap_plain(gt, results)
        notes.append(
            f"mask AP {_fmt(out['mask_ap_plain'])} when ranked by the detection score instead "
            "of the mask score"
        )
    return out | ({NOTES: notes} if notes else {})


def _check_mask_ious(results: list[dict]) -> None:
    for i, r in enumerate(results):
        value = r.get(MASK_IOU)
        if isinstance(value, bool) or not isinstance(value, int | float):
            if MASK_IOU not in r:
                raise DataError(f"result {i} lacks {MASK_IOU}, which other results have")
            raise DataError(f"result {i} has {MASK_IOU} {value!r}, which is not a number")


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
