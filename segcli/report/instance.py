"""What the instance task shows of its scores: the results table, the evaluation plots and the
sample overlays of training (segcli.report.view("instance")).

Free of torch, so that `segcli eval --gt-json/--pred-json` (no model) starts fast.
"""

from __future__ import annotations

import math

import numpy as np
from rich.console import Group
from rich.text import Text

from segcli.metrics.coco import KINDS, STATS
from segcli.report import rich_class_table, write_training_plots
from segcli.report.html import Table

SCORE = "mask_ap"
PLOTS = ("curves.png", "pr_curve.png", "per_class_ap.png")  # what write_plots writes
NOTES = "notes"  # result key: lines about extra scores (a recipe's extra_metrics) to show
LABELS = dict(
    zip(STATS, ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"))
)  # fmt: skip
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
    table = rich_class_table(class_table(result, class_names), title)
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
    """What the numbers alone do not say: no detections, then the extra scores' own lines."""
    lines = ["no detections: every AP is 0"] if result.get("detections") == 0 else []
    return lines + list(result.get(NOTES, []))


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def eval_plots(result: dict, class_names) -> dict[str, bytes]:
    """pr_curve.png (mask and box precision-recall at IoU 0.5 and 0.75, area all, 100
    detections, mean over the classes) and per_class_ap.png, as PNG bytes by file name."""
    from segcli import viz

    kinds = scored_kinds(result)
    curves = {
        k: {f"IoU 0.{t} (AP{t} {_fmt(result[f'{k}_ap{t}'])})": result[f"{k}_pr{t}"] for t in IOUS}
        for k in kinds
    }
    bars = {f"{k} AP": result[f"{k}_per_class_ap"] for k in kinds}
    return {
        "pr_curve.png": viz.pr_curve_png(curves),
        "per_class_ap.png": viz.bar_chart_png(list(class_names[1:]), bars, "per-class AP@[.5:.95]"),
    }


def write_plots(rows: list[dict], last_val: dict | None, class_names, run_dir) -> None:
    """PLOTS: the training curves, then eval_plots of the last validation (if any)."""
    plots = eval_plots(last_val, class_names) if last_val else {}
    write_training_plots(SCORE, plots, rows, run_dir)


def sample_panels(
    task, model, source, class_names, device, count: int = 4, score_threshold: float = 0.5
) -> list:
    """(name, uint8 RGB image) for the first validation images: prediction (by `task`) |
    ground truth instance overlays, enlarged (nearest neighbour) so that small images stay
    readable."""
    from segcli import viz

    images = []
    for index in range(min(count, len(source))):
        sample = source.load(index)
        image, truth = sample["image"], sample["instances"]
        (found,) = task.predict(model, [image], device)
        keep = found["scores"] >= score_threshold
        gt = {
            "masks": np.array([i["mask"] for i in truth], bool).reshape(-1, *image.shape[:2]),
            "boxes": np.array([i["box"] for i in truth]).reshape(-1, 4),
            "labels": np.array([i["label"] for i in truth], dtype=np.int64),
        }
        pred = {
            "masks": found["masks"][keep, 0],
            "boxes": found["boxes"][keep],
            "labels": found["labels"][keep],
            "scores": found["scores"][keep],
        }
        big = viz.upscale(image)
        factor = big.shape[0] // image.shape[0]
        panels = [
            viz.draw_instances(
                big,
                d["masks"].repeat(factor, 1).repeat(factor, 2),
                d["boxes"] * factor,
                d["labels"],
                class_names,
                d.get("scores"),
            )
            for d in (pred, gt)
        ]
        gap = np.full((big.shape[0], 4, 3), 255, np.uint8)
        row = np.concatenate([panels[0], gap, panels[1]], axis=1)
        strip = viz.caption_strip(row.shape[1], "prediction | ground truth")
        images.append((sample["name"], np.concatenate([row, strip], axis=0)))
    return images
