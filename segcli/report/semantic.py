"""What the semantic task shows of its scores: the results table, the evaluation plots and the
sample overlays of training (segcli.report.view("semantic"))."""

from __future__ import annotations

import numpy as np
from rich.console import Group
from rich.text import Text

from segcli.report import rich_class_table, write_training_plots
from segcli.report.html import Table

SCORE = "miou"
PLOTS = ("curves.png", "confusion.png", "per_class_iou.png")  # what write_plots writes
SUMMARY_KEYS = ("miou", "pa", "mpa", "fwiou")
SUMMARY_LABELS = ["mIoU", "pixel acc", "mean acc", "fwIoU"]


def class_table(result: dict, class_names) -> Table:
    """Per-class IoU and accuracy, one row per class id."""
    rows = [
        [str(i), name, _fmt(iou), _fmt(acc)]
        for i, (name, iou, acc) in enumerate(
            zip(class_names, result["per_class_iou"], result["per_class_acc"])
        )
    ]
    return Table(["id", "class", "IoU", "acc"], rows)


def summary_table(result: dict) -> Table:
    return Table(SUMMARY_LABELS, [[_fmt(result[key]) for key in SUMMARY_KEYS]])


def results_table(result: dict, class_names, title: str = "validation") -> Group:
    """Per-class IoU and accuracy, then the four summary scores on one line."""
    table = rich_class_table(class_table(result, class_names), title)
    return Group(table, Text(summary_line(result)))


def summary_line(result: dict) -> str:
    """The four scores on one line."""
    return "  ".join(
        f"{label} {_fmt(result[key])}" for label, key in zip(SUMMARY_LABELS, SUMMARY_KEYS)
    )


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"


def write_plots(rows: list[dict], last_val: dict | None, class_names, run_dir) -> None:
    """PLOTS: the training curves, then eval_plots of the last validation (if any)."""
    plots = eval_plots(last_val, class_names) if last_val else {}
    write_training_plots(SCORE, plots, rows, run_dir)


def eval_plots(result: dict, class_names) -> dict[str, bytes]:
    """confusion.png (when the result holds the matrix) and per_class_iou.png, as PNG bytes
    by file name."""
    from segcli import viz

    names, plots = list(class_names), {}
    if "confusion" in result:
        plots["confusion.png"] = viz.confusion_png(np.asarray(result["confusion"]), names)
    bars = {"IoU": result["per_class_iou"]}
    plots["per_class_iou.png"] = viz.bar_chart_png(
        names, bars, f"per-class IoU (mIoU {_fmt(result['miou'])})"
    )
    return plots


def sample_panels(task, model, source, class_names, device, count: int = 4) -> list:
    """(name, uint8 RGB image) for the first validation images: prediction (by `task`) |
    ground truth overlays, enlarged to be read."""
    from segcli import viz

    images = []
    for index in range(min(count, len(source))):
        sample = source.load(index)
        image, truth = sample["image"], sample["mask"]
        (pred,) = task.predict(model, [image], device)
        panels = [viz.upscale(viz.overlay(image, label)) for label in (pred, truth)]
        gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
        row = np.concatenate([panels[0], gap, panels[1]], axis=1)
        ids = sorted(
            int(c)
            for c in np.unique(np.concatenate([pred.ravel(), truth.ravel()]))
            if 0 < c < len(class_names)
        )
        legend = [(class_names[i], i) for i in ids]
        strip = viz.caption_strip(row.shape[1], "prediction | ground truth", legend)
        images.append((sample["name"], np.concatenate([row, strip], axis=0)))
    return images
