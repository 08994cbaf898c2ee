"""What the instance task shows of its scores: the results table and the evaluation plots.

Free of torch, so that `segcli eval --gt-json/--pred-json` (no model) starts fast.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table as RichTable
from rich.text import Text

from segcli.metrics.coco import KINDS, STATS
from segcli.report.html import Table

SCORE = "mask_ap"
LABELS = dict(
    zip(STATS, ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"))
)  # fmt: skip
EVAL_PLOTS = ("pr_curve.png", "per_class_ap.png")  # what eval_plots draws
IOUS = ("50", "75")  # the IoU thresholds of pr_curve.png: result keys {kind}_pr50, _ap50, ...


def scored_kinds(result: dict) -> list[str]:
    return [k for k in KINDS if f"{k}_ap" in result]


def class_table(result: dict, class_names) -> Table:
    """Per-category AP@[.5:.95] of each scored kind (mask, box), one row per class id."""
    kinds = scored_kinds(result)
    rows = [
        [str(i), name, *(_fmt(result[f"{k}_per_class_ap"][i - 1]) for k in kinds)]
        for i, name in enumerate(class_names[1:], start=1)
    ]
    return Table(["id", "class", *(f"{k} AP" for k in kinds)], rows)


def summary_table(result: dict) -> Table:
    """The 12 COCO numbers, one row per scored kind."""
    rows = [[k, *(_fmt(result.get(f"{k}_{s}")) for s in STATS)] for k in scored_kinds(result)]
    return Table(["", *LABELS.values()], rows)


def results_table(result: dict, class_names, title: str = "validation") -> Group:
    """Per-category AP (mask and box), then the 12 COCO numbers of each kind (AP, AR lines)."""
    classes = class_table(result, class_names)
    table = RichTable(title=title)
    for column in classes.headers:
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in classes.rows:
        table.add_row(*row)
    lines = []
    for k in scored_kinds(result):
        for group in (STATS[:6], STATS[6:]):
            numbers = "  ".join(f"{LABELS[s]} {_fmt(result.get(f'{k}_{s}'))}" for s in group)
            lines.append(f"{k:<4} {numbers}")
    return Group(table, Text("\n".join(lines + _notes(result))))


def summary_line(result: dict) -> str:
    """AP and AP50 of masks and boxes on one line (a validation during training)."""
    scores = [
        f"{k} AP {_fmt(result.get(f'{k}_ap'))} AP50 {_fmt(result.get(f'{k}_ap50'))}"
        for k in scored_kinds(result)
    ]
    return "  ".join(scores + _notes(result)[:1])


def _notes(result: dict) -> list[str]:
    lines = []
    if result.get("detections") == 0:
        lines.append("no detections: every AP is 0")
    if "maskiou_pearson" in result:
        lines.append(
            f"MaskIoU vs actual IoU: Pearson r {_fmt(result['maskiou_pearson'])} over the "
            f"{result['maskiou_matched']} detections matching an object (IoU >= 0.5), "
            f"{_fmt(result['maskiou_pearson_all'])} over all"
        )
    if "mask_ap_plain" in result:
        lines.append(
            f"mask AP {_fmt(result['mask_ap'])} ranked by the mask score vs "
            f"{_fmt(result['mask_ap_plain'])} by the detection score"
        )
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def eval_plots(result: dict, class_names) -> dict[str, bytes]:
    """pr_curve.png (mask and box precision-recall at IoU 0.5 and 0.75, area all, 100
    detections, mean over the classes) and per_class_ap.png, as PNG bytes by file name."""
    from segcli import viz

    kinds = scored_kinds(result)
    curves = {
        k: {
            f"IoU 0.{t} (AP{t} {_fmt(result[f'{k}_ap{t}'])})": result[f"{k}_pr{t}"]
            for t in ("50", "75")
        }
        for k in kinds
    }
    bars = {f"{k} AP": result[f"{k}_per_class_ap"] for k in kinds}
    return {
        "pr_curve.png": viz.pr_curve_png(curves),
        "per_class_ap.png": viz.bar_chart_png(list(class_names[1:]), bars, "per-class AP@[.5:.95]"),
    }
