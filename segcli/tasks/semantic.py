"""The semantic task: its data, training losses, evaluation and prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Group
from rich.table import Table as RichTable
from rich.text import Text

from segcli.config import BUILTIN_DATA, TrainConfig
from segcli.data.doctor import preflight
from segcli.data.semantic import SemanticSamples
from segcli.data.sources import class_names_for, open_source
from segcli.data.transforms import eval_transform, semantic_train_transform
from segcli.metrics import SegMetrics
from segcli.progress import tracked
from segcli.report.html import Table

SCORE = "miou"
METRICS = ("miou", "pa", "mpa", "fwiou", "all")  # what `segcli eval --metric` takes
PLOTS = ("curves.png", "confusion.png", "per_class_iou.png")  # what write_plots writes
SUMMARY_KEYS = ("miou", "pa", "mpa", "fwiou")
SUMMARY_LABELS = ["mIoU", "pixel acc", "mean acc", "fwIoU"]


@dataclass
class TaskData:
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    val_source: object
    class_names: tuple[str, ...]
    collate_fn: object = None
    category_ids: tuple[int, ...] | None = None  # instance data: the COCO id of labels 1..K


def build_data(cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val")) -> TaskData:
    sources = {
        s: open_source(
            cfg.data, s, cfg.img_size, _shapes_count(cfg, s), via_attribute=cfg.via_attribute
        )
        for s in splits
    }
    names = class_names_for(sources[splits[0]], cfg.num_classes, cfg.ignore_index, cfg.binary)
    k = len(names)
    if "train" in sources and cfg.data != BUILTIN_DATA:  # stop before a step, not mid-epoch
        preflight(sources["train"], k, cfg.ignore_index, cfg.binary)
        if "val" in sources:  # every val file: a validation must not fail hours in
            preflight(sources["val"], k, cfg.ignore_index, cfg.binary, len(sources["val"]))
    sets = {}
    for split, source in sources.items():
        transform = (
            semantic_train_transform(
                cfg.img_size, cfg.scale_range, cfg.hflip, cfg.ignore_index, cfg.elastic
            )
            if split == "train"
            else eval_transform()
        )
        sets[split] = SemanticSamples(source, transform, k, cfg.ignore_index, cfg.binary)
    return TaskData(sets.get("train"), sets.get("val"), sources.get("val"), names)


def _shapes_count(cfg: TrainConfig, split: str) -> int:
    return cfg.shapes_train if split == "train" else cfg.shapes_val


def cross_entropy(outputs, target: torch.Tensor, ignore_index: int) -> dict[str, torch.Tensor]:
    """Pixel-wise cross-entropy averaged over the labelled pixels (float32 even under AMP)."""
    return {"loss_ce": F.cross_entropy(outputs.float(), target, ignore_index=ignore_index)}


def compute_losses(model, batch, device, precision, criterion, cfg: TrainConfig):
    images, masks = batch
    images = images.to(device, non_blocking=True)
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    masks = masks.to(device, non_blocking=True)
    with precision.autocast():
        outputs = model(images)
    return (criterion or cross_entropy)(outputs, masks, cfg.ignore_index), images.shape[0]


@torch.no_grad()
def predict_logits(model, images: torch.Tensor) -> torch.Tensor:
    """Class scores [B, K, H, W] at the input size, float32."""
    return model(images).float()


@torch.no_grad()
def evaluate(
    model, loader, num_classes: int, ignore_index: int, device, precision, predict=predict_logits
) -> tuple[dict, np.ndarray]:
    """Scores over the whole loader (all ranks together) and the confusion matrix."""
    model.eval()
    metrics = SegMetrics(num_classes, ignore_index)
    for images, masks in tracked(loader, "evaluating"):
        with precision.autocast():
            logits = predict(model, images.to(device, non_blocking=True))
        metrics.update(logits.argmax(1), masks.to(device, non_blocking=True))
    metrics.all_reduce(device)
    conf = metrics.confusion_matrix()
    return metrics.compute(), conf.numpy()


def score_of(result: dict) -> float:
    return result[SCORE]


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
    classes = class_table(result, class_names)
    table = RichTable(title=title)
    for column in classes.headers:
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in classes.rows:
        table.add_row(*row)
    return Group(table, Text(summary_line(result)))


def summary_line(result: dict) -> str:
    """The four scores on one line."""
    return "  ".join(
        f"{label} {_fmt(result[key])}" for label, key in zip(SUMMARY_LABELS, SUMMARY_KEYS)
    )


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"


def validate(
    model, data: TaskData, cfg: TrainConfig, device, precision, dist, predict=predict_logits
) -> dict:
    """Scores of `model` on the validation split, gathered over all ranks; `predict` may add
    test-time augmentation or CRF refinement (segcli.ops.tta)."""
    from segcli.data.loader import eval_loader
    from segcli.engine.checkpoint import unwrap

    loader = eval_loader(data.val, cfg.workers, dist.rank, dist.world_size)
    result, conf = evaluate(
        unwrap(model), loader, len(data.class_names), cfg.ignore_index, device, precision, predict
    )
    return {**result, "confusion": conf.tolist()}


@torch.no_grad()
def predict_labels(model, images, device, predict=predict_logits) -> np.ndarray:
    """Class ids [B, H, W] (uint8) for RGB uint8 images of one size, run as one batch."""
    transform = eval_transform()
    batch = torch.stack([transform(image=image)["image"] for image in images]).to(device)
    model.eval()
    return predict(model, batch).argmax(1).to(torch.uint8).cpu().numpy()


def predict_label(model, image: np.ndarray, device, predict=predict_logits) -> np.ndarray:
    """Class ids [H, W] (uint8) for one RGB uint8 image."""
    return predict_labels(model, [image], device, predict)[0]


def write_plots(rows: list[dict], last_val: dict | None, class_names, run_dir) -> None:
    from segcli import io, viz

    viz.plot_curves(rows, run_dir / "curves.png", SCORE)
    for name, png in (eval_plots(last_val, class_names) if last_val else {}).items():
        io.write_bytes(run_dir / name, png)


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


def sample_panels(model, source, class_names, device, count: int = 4) -> list:
    """(name, uint8 RGB image) for the first validation images: prediction | ground truth
    overlays, enlarged to be read."""
    from segcli import viz

    images = []
    for index in range(min(count, len(source))):
        sample = source.load(index)
        image, truth = sample["image"], sample["mask"]
        pred = predict_label(model, image, device)
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
