"""The instance task: COCO-format data, detection losses, prediction and COCO mask/box AP.
What it shows of them is segcli.report.instance's.

Models follow torchvision's detection convention: train mode `model(list[image], list[target])
-> dict of losses`; eval mode `model(list[image]) -> list[dict(boxes, labels, scores, masks)]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from segcli.config import TrainConfig
from segcli.data.instance import InstanceImages, collate, image_tensor, instance_train_samples
from segcli.data.sources import open_source
from segcli.engine.distributed import all_gather_objects
from segcli.errors import ConfigError, DataError
from segcli.metrics.coco import KINDS, MASK_THRESHOLD, detections_to_results, evaluate_results
from segcli.recipe import Recipe, load_object
from segcli.report import instance as view
from segcli.tasks import TaskData


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


class InstanceTask:
    """The losses live in the model (a recipe's `loss` does not apply); the recipe's
    `extra_metrics` hook adds scores to the COCO evaluation."""

    name = "instance"
    score = view.SCORE
    metrics = ("mask-ap", "box-ap", "all")
    plots = view.PLOTS

    def __init__(self, recipe: Recipe, predict: Callable | None = None):
        if predict is not None:
            raise ConfigError(
                f"--tta, --crf and --superpixels apply to semantic recipes, not {recipe.name}"
            )
        self.extra_metrics = load_object(recipe.extra_metrics) if recipe.extra_metrics else None

    def build_data(self, cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val")) -> TaskData:
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

    def losses(self, model, batch, device, precision, cfg: TrainConfig) -> dict[str, torch.Tensor]:
        images, targets = batch
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [
            {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
            for t in targets
        ]
        with precision.autocast():
            losses = model(images, targets)
        return {name: value.float() for name, value in losses.items()}

    def predict_batch(self, model, batch, device, precision) -> list[dict]:
        """Detections (to_numpy) of a loader batch (images, targets)."""
        with precision.autocast():
            outputs = model([image.to(device, non_blocking=True) for image in batch[0]])
        return [to_numpy(output) for output in outputs]

    @torch.no_grad()
    def predict(self, model, images: Sequence[np.ndarray], device) -> list[dict]:
        """Detections of RGB uint8 images [H, W, 3], run as one batch: one dict of numpy arrays
        (boxes, labels, scores, masks bool [N,1,H,W]...) per image."""
        model.eval()
        return [to_numpy(o) for o in model([image_tensor(image).to(device) for image in images])]

    def evaluator(self, data: TaskData, cfg: TrainConfig, device) -> InstanceEvaluator:
        return InstanceEvaluator(data.val_source, data.category_ids, self.extra_metrics)


class InstanceEvaluator:
    """COCO results (masks binarised at MASK_THRESHOLD, 0.5, at full image resolution) of every
    image, scored once all are in. summarize() scores the results of all ranks, so distributed
    validation equals a single process's; `results` keeps them (eval --save-json, the worst
    images)."""

    def __init__(self, source, category_ids, extra_metrics: Callable | None = None):
        self.source, self.category_ids, self.extra_metrics = source, category_ids, extra_metrics
        self.reset()

    def reset(self) -> None:
        self.results: list[dict] = []

    def process(self, batch, outputs: list[dict]) -> None:
        for target, output in zip(batch[1], outputs):
            self.results += detections_to_results(output, target["image_id"], self.category_ids)

    def summarize(self) -> dict:
        # a stable sort by image id restores the single-process order (COCOeval keeps ties)
        gathered = (r for part in all_gather_objects(self.results) for r in part)
        self.results = sorted(gathered, key=lambda r: r["image_id"])
        gt = self.source.coco()
        scores = evaluate_results(gt, self.results, KINDS)
        return scores | (self.extra_metrics(gt, self.results) if self.extra_metrics else {})
