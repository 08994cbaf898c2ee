"""The instance task: COCO-format data, detection losses, COCO mask/box AP, instance overlays.

Models follow torchvision's detection convention: train mode `model(list[image], list[target])
-> dict of losses`; eval mode `model(list[image]) -> list[dict(boxes, labels, scores, masks)]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from segcli.config import TrainConfig
from segcli.data.instance import (
    InstanceImages,
    collate,
    image_tensor,
    instance_train_samples,
)
from segcli.data.sources import open_source
from segcli.engine.distributed import all_gather_objects
from segcli.errors import DataError
from segcli.metrics.coco import KINDS, MASK_THRESHOLD, detections_to_results, evaluate_results
from segcli.progress import tracked
from segcli.report import instance as instance_view
from segcli.tasks.semantic import TaskData

METRICS = ("mask-ap", "box-ap", "all")  # what `segcli eval --metric` takes
PLOTS = ("curves.png", "pr_curve.png", "per_class_ap.png")  # what write_plots writes
# the task's tables and plots live in instance_view, torch-free for `eval --gt-json`
SCORE, eval_plots = instance_view.SCORE, instance_view.eval_plots
class_table, summary_table = instance_view.class_table, instance_view.summary_table
results_table, summary_line = instance_view.results_table, instance_view.summary_line


def build_data(cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val")) -> TaskData:
    sources = {
        split: open_source(
            cfg.data,
            split,
            cfg.img_size,
            cfg.shapes_train if split == "train" else cfg.shapes_val,
            task="instance",
            via_attribute=cfg.via_attribute,
        )
        for split in splits
    }
    first = sources[splits[0]]
    for split, source in sources.items():
        if source.category_ids != first.category_ids:
            raise DataError(
                f"{cfg.data}: the {split} split has other categories than the "
                f"{splits[0]} split ({source.category_ids} vs {first.category_ids})"
            )
    sets = {
        split: instance_train_samples(source, cfg.augment, cfg.scale_range, cfg.hflip)
        if split == "train"
        else InstanceImages(source)  # evaluation scores against source.coco(): images suffice
        for split, source in sources.items()
    }
    return TaskData(
        sets.get("train"),
        sets.get("val"),
        sources.get("val"),
        tuple(first.class_names),
        collate,
        first.category_ids,
    )


def compute_losses(model, batch, device, precision, criterion, cfg: TrainConfig):
    """The model's own dict of losses (criterion is unused: the losses live in the model)."""
    images, targets = batch
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [
        {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
        for t in targets
    ]
    with precision.autocast():
        losses = model(images, targets)
    return {name: value.float() for name, value in losses.items()}, len(images)


def to_numpy(output: dict) -> dict:
    """A model's detections as numpy arrays; the mask probabilities [N,1,H,W] binarised at
    MASK_THRESHOLD on the device (bool, same shape), so a byte a pixel crosses to the host
    instead of a float."""
    return {k: _host(k, v).numpy() for k, v in output.items()}


def _host(key: str, value: torch.Tensor) -> torch.Tensor:
    if key == "masks":
        value = value >= MASK_THRESHOLD
    elif key != "labels":
        value = value.detach().float()
    return value.cpu()


@torch.no_grad()
def predict_results(model, loader, category_ids, device, precision) -> list[dict]:
    """COCO results (masks binarised at MASK_THRESHOLD, 0.5, at full image resolution) of
    every loader image."""
    model.eval()
    results = []
    for images, targets in tracked(loader, "predicting"):
        with precision.autocast():
            outputs = model([image.to(device, non_blocking=True) for image in images])
        for target, output in zip(targets, outputs):
            results += detections_to_results(to_numpy(output), target["image_id"], category_ids)
    return results


def evaluate(model, data: TaskData, cfg: TrainConfig, device, precision, dist):
    """(scores, COCO results) over the val split; every rank predicts its share and all ranks
    score the gathered results, so distributed validation equals a single process's."""
    from segcli.data.loader import eval_loader
    from segcli.engine.checkpoint import unwrap

    loader = eval_loader(data.val, cfg.workers, dist.rank, dist.world_size, collate_fn=collate)
    mine = predict_results(unwrap(model), loader, data.category_ids, device, precision)
    # a stable sort by image id restores the single-process order (COCOeval keeps ties in order)
    results = sorted(
        (r for part in all_gather_objects(mine) for r in part), key=lambda r: r["image_id"]
    )
    return evaluate_results(data.val_source.coco(), results, KINDS), results


def validate(model, data: TaskData, cfg: TrainConfig, device, precision, dist) -> dict:
    return evaluate(model, data, cfg, device, precision, dist)[0]


def score_of(result: dict) -> float:
    return result[SCORE]


def write_plots(rows: list[dict], last_val: dict | None, class_names, run_dir) -> None:
    from segcli import io, viz

    viz.plot_curves(rows, run_dir / "curves.png", SCORE)
    for name, png in (eval_plots(last_val, class_names) if last_val else {}).items():
        io.write_bytes(run_dir / name, png)


@torch.no_grad()
def predict_instances(model, images: Sequence[np.ndarray], device) -> list[dict]:
    """Detections of RGB uint8 images [H, W, 3], run as one batch: one dict of numpy arrays
    (boxes, labels, scores, masks bool [N,1,H,W]...) per image."""
    model.eval()
    return [to_numpy(o) for o in model([image_tensor(image).to(device) for image in images])]


def sample_panels(
    model, source, class_names, device, count: int = 4, score_threshold: float = 0.5
) -> list:
    """(name, uint8 RGB image) for the first validation images: prediction | ground truth
    instance overlays, enlarged (nearest neighbour) so that small images stay readable."""
    from segcli import viz

    images = []
    for index in range(min(count, len(source))):
        sample = source.load(index)
        image, truth = sample["image"], sample["instances"]
        (found,) = predict_instances(model, [image], device)
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
