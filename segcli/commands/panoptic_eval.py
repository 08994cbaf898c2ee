"""`segcli eval --metric pq`: COCO panoptic predictions (json + PNG folder) scored against COCO
panoptic ground truth, as panopticapi's `pq_compute` does."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Group
from rich.table import Table

from segcli.data.panoptic import pair_annotations, read_panoptic_json, read_segment_png
from segcli.errors import DataError
from segcli.metrics.panoptic import PanopticQuality, SegmentError

GROUPS = (("all", ""), ("things", "_things"), ("stuff", "_stuff"))


def evaluate_panoptic_files(
    gt_json: Path, pred_json: Path, gt_dir: Path | None = None, pred_dir: Path | None = None
) -> dict:
    """PanopticQuality.compute() of the predictions against the ground truth, images paired by
    image_id; PNG folders default to COCO's (the json's path without `.json`)."""
    gt = read_panoptic_json(gt_json, gt_dir, gt=True)
    pred = read_panoptic_json(pred_json, pred_dir, gt=False)
    metric = PanopticQuality(gt.categories)
    for gt_ann, pred_ann in pair_annotations(gt, pred):
        gt_png, pred_png = gt.folder / gt_ann["file_name"], pred.folder / pred_ann["file_name"]
        gt_ids, pred_ids = read_segment_png(gt_png), read_segment_png(pred_png)
        if pred_ids.shape != gt_ids.shape:
            raise DataError(
                f"{pred_png}: is {pred_ids.shape[1]}x{pred_ids.shape[0]} but its ground truth "
                f"{gt_png} is {gt_ids.shape[1]}x{gt_ids.shape[0]}"
            )
        try:
            metric.update(pred_ids, pred_ann["segments_info"], gt_ids, gt_ann["segments_info"])
        except SegmentError as exc:
            raise DataError(f"{gt_png if exc.side == 'gt' else pred_png}: {exc}") from None
    return metric.compute()


def results_table(result: dict) -> Group:
    """PQ, SQ, RQ per category, then for all categories, things and stuff (panopticapi's
    summary; N is the number of categories averaged)."""
    per_class = Table(title="panoptic quality per category")
    for column in ("id", "category", "kind", "PQ", "SQ", "RQ", "TP", "FP", "FN"):
        per_class.add_column(column, justify="left" if column in ("category", "kind") else "right")
    for cid, row in result["per_class"].items():
        kind = "thing" if row["isthing"] else "stuff"
        scores = [_fmt(row[k]) for k in ("pq", "sq", "rq")]
        counts = [str(row[k]) for k in ("tp", "fp", "fn")]
        per_class.add_row(str(cid), row["name"], kind, *scores, *counts)
    summary = Table(title="panoptic quality")
    for column in ("", "PQ", "SQ", "RQ", "N"):
        summary.add_column(column, justify="right" if column else "left")
    for name, suffix in GROUPS:
        scores = (_fmt(result[k + suffix]) for k in ("pq", "sq", "rq"))
        summary.add_row(name, *scores, str(result["n" + suffix]))
    return Group(per_class, summary)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"
