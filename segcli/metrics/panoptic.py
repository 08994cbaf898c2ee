"""Panoptic quality (Kirillov et al., "Panoptic Segmentation", arXiv:1801.00868, section 4).

Per category, over the whole dataset (section 4.1-4.2):
    PQ = sum_{(p,g) in TP} IoU(p,g) / (|TP| + |FP|/2 + |FN|/2) = SQ * RQ
    SQ = sum_{TP} IoU / |TP| (0 when |TP| = 0),  RQ = |TP| / (|TP| + |FP|/2 + |FN|/2)
A predicted and a ground-truth segment of the same category match when their IoU > 0.5, which
makes every match unique (section 4.1). Void and crowd follow COCO's evaluation, panopticapi's
`pq_compute_single_core` (github.com/cocodataset/panopticapi, panopticapi/evaluation.py):
- segment id 0 is VOID; a predicted segment's pixels on ground-truth VOID leave its union;
- crowd ground truth (`iscrowd` 1) is never matched and never a false negative;
- an unmatched predicted segment is not a false positive when more than half of it lies on
  VOID or on crowd regions of its own category.
Categories with no TP, FP or FN get NaN and are left out of the means (panopticapi leaves them
out too, reporting 0 for them). One deliberate difference: all crowd regions of a category in
an image absorb predictions, where panopticapi keeps only the last one listed (COCO has at most
one per category and image, where both agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

VOID = 0
OFFSET = 256**3  # segment ids are below it (three 8-bit PNG channels)
MATCH_IOU = 0.5  # section 4.1: IoU > 0.5 makes matches unique
IGNORED_FRACTION = 0.5  # an unmatched prediction more than half VOID or crowd is not an FP


class SegmentError(ValueError):
    """A segment map disagrees with its segments_info; `side` is "gt" or "pred"."""

    def __init__(self, side: str, message: str):
        super().__init__(message)
        self.side = side


class PanopticQuality:
    """Accumulates per-category IoU sums and TP/FP/FN over images; `compute()` gives PQ.

    `categories`: COCO panoptic categories, dicts with `id`, `isthing` (0/1) and optionally
    `name`. Segments are COCO `segments_info` lists: dicts with `id`, `category_id` and, for
    the ground truth, `iscrowd` (default 0).
    """

    def __init__(self, categories: Sequence[Mapping]):
        self.category_ids = np.array([int(c["id"]) for c in categories], np.int64)
        if len(set(self.category_ids.tolist())) != len(self.category_ids):
            raise ValueError("category ids must be unique")
        self.isthing = np.array([bool(c["isthing"]) for c in categories])
        self.names = [str(c.get("name", c["id"])) for c in categories]
        self._index = {int(c): i for i, c in enumerate(self.category_ids)}
        self.iou = np.zeros(len(categories))
        self.tp, self.fp, self.fn = (np.zeros(len(categories), np.int64) for _ in range(3))

    def update(self, pred_ids, pred_segments: Iterable[Mapping], gt_ids, gt_segments) -> None:
        """Add one image: `pred_ids` and `gt_ids` are segment id maps [H, W] (integers)."""
        pred_ids, gt_ids = np.asarray(pred_ids, np.int64), np.asarray(gt_ids, np.int64)
        if pred_ids.shape != gt_ids.shape:
            raise SegmentError("pred", f"shape {pred_ids.shape} is not the gt's {gt_ids.shape}")
        for side, ids in (("gt", gt_ids), ("pred", pred_ids)):
            if ids.size and (ids.min() < 0 or ids.max() >= OFFSET):
                raise SegmentError(side, f"segment ids must be in [0, {OFFSET})")
        # every (gt id, pred id) pair and its pixel count in one sort, as panopticapi does
        pairs, counts = np.unique(gt_ids * OFFSET + pred_ids, return_counts=True)
        gt_table, gt_cat, crowd = self._table("gt", gt_segments)
        pred_table, pred_cat, _ = self._table("pred", pred_segments)
        rows = _rows("gt", gt_table, pairs // OFFSET), _rows("pred", pred_table, pairs % OFFSET)
        inter = np.zeros((len(gt_table), len(pred_table)), np.int64)
        inter[rows] = counts
        _check_drawn("gt", gt_table, inter.sum(1))
        _check_drawn("pred", pred_table, inter.sum(0))
        self._add(inter, gt_cat, crowd, pred_cat)

    def _table(self, side: str, segments: Iterable[Mapping]):
        """(segment ids, category index, crowd flag) per row of the image's segment table,
        sorted by id; row 0 is VOID (category -1)."""
        table = sorted(segments, key=lambda s: int(s["id"]))
        seg_ids = np.array([VOID] + [int(s["id"]) for s in table], np.int64)
        problem = _table_problem(seg_ids)
        for seg in table:
            if problem is None and int(seg["category_id"]) not in self._index:
                problem = f"segment {seg['id']} has unknown category_id {seg['category_id']}"
        if problem:
            raise SegmentError(side, problem)
        cats = np.array([-1] + [self._index[int(s["category_id"])] for s in table], np.int64)
        crowd = np.array([False] + [bool(s.get("iscrowd", 0)) for s in table])
        return seg_ids, cats, crowd

    def _add(self, inter: np.ndarray, gt_cat, crowd, pred_cat) -> None:
        """Match one image's segments from their intersections [G, P] (row/column 0: VOID)."""
        gt_area, pred_area = inter.sum(1), inter.sum(0)
        # the union leaves out the prediction's pixels on ground-truth VOID (row 0)
        union = gt_area[:, None] + (pred_area - inter[0])[None] - inter
        iou = inter / np.maximum(union, 1)
        same = (gt_cat[:, None] == pred_cat[None]) & ~crowd[:, None]
        same[0], same[:, 0] = False, False
        gi, pi = np.nonzero(same & (iou > MATCH_IOU))
        count = len(self.iou)
        self.tp += np.bincount(gt_cat[gi], minlength=count)
        self.iou += np.bincount(gt_cat[gi], weights=iou[gi, pi], minlength=count)
        unmatched_gt = np.ones(len(gt_cat), bool)
        unmatched_gt[gi] = False
        unmatched_gt &= ~crowd & (gt_cat >= 0)
        self.fn += np.bincount(gt_cat[unmatched_gt], minlength=count)
        # pixels of each prediction on VOID or on crowd regions of its own category
        crowd_of_cat = crowd[:, None] & (gt_cat[:, None] == pred_cat[None])
        ignored = inter[0] + (inter * crowd_of_cat).sum(0)
        unmatched = np.ones(len(pred_cat), bool)
        unmatched[pi] = False
        unmatched &= (pred_cat >= 0) & (ignored <= IGNORED_FRACTION * pred_area)
        self.fp += np.bincount(pred_cat[unmatched], minlength=count)

    def compute(self) -> dict:
        """`pq`, `sq`, `rq`, `n` (categories counted) overall and with `_things` / `_stuff`
        suffixes, and `per_class`: category id -> dict(name, isthing, pq, sq, rq, tp, fp, fn)."""
        seen = (self.tp + self.fp + self.fn) > 0
        denominator = np.where(seen, self.tp + 0.5 * self.fp + 0.5 * self.fn, np.nan)
        pq = self.iou / denominator
        sq = np.where(seen, np.divide(self.iou, np.maximum(self.tp, 1)), np.nan)
        rq = self.tp / denominator
        result = {}
        for suffix, members in (("", True), ("_things", self.isthing), ("_stuff", ~self.isthing)):
            counted = seen & members
            for key, values in (("pq", pq), ("sq", sq), ("rq", rq)):
                result[key + suffix] = float(values[counted].mean()) if counted.any() else np.nan
            result["n" + suffix] = int(counted.sum())
        result["per_class"] = {
            int(cid): {
                "name": self.names[i],
                "isthing": bool(self.isthing[i]),
                "pq": float(pq[i]),
                "sq": float(sq[i]),
                "rq": float(rq[i]),
                "tp": int(self.tp[i]),
                "fp": int(self.fp[i]),
                "fn": int(self.fn[i]),
            }
            for i, cid in enumerate(self.category_ids)
        }
        return result


def _rows(side: str, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The table row of each id (a few per image); an id not in the table is an error."""
    rows = np.minimum(np.searchsorted(table, ids), len(table) - 1)
    stray = table[rows] != ids
    if stray.any():
        raise SegmentError(
            side, f"segment id {ids[stray][0]} is in the PNG but not in segments_info"
        )
    return rows


def _check_drawn(side: str, table: np.ndarray, areas: np.ndarray) -> None:
    """Every listed segment (table[1:], areas[1:]) has pixels in the map."""
    empty = table[1:][areas[1:] == 0]
    if len(empty):
        raise SegmentError(
            side, f"segments_info lists segment {empty[0]}, which has no pixel in the PNG"
        )


def _table_problem(seg_ids: np.ndarray) -> str | None:
    """What is wrong with a segment id list [VOID, sorted ids...], or None."""
    if (seg_ids[1:] == VOID).any():
        return "segments_info lists segment id 0, which is VOID (unlabelled)"
    repeated = seg_ids[1:][np.diff(seg_ids) == 0]
    if len(repeated):
        return f"segment id {repeated[0]} appears twice in segments_info"
    if seg_ids[1:].size and (seg_ids[1:] < 0).any():
        return f"segment id {seg_ids[1]} is negative"
    return None
