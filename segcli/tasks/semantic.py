"""The semantic task: its data, training losses, prediction and evaluation (mIoU and the
confusion matrix). What it shows of them is segcli.report.semantic's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from segcli.config import BUILTIN_DATA, TrainConfig
from segcli.data.doctor import preflight
from segcli.data.semantic import SemanticSamples
from segcli.data.sources import class_names_for, open_source
from segcli.data.transforms import eval_transform, semantic_train_transform
from segcli.metrics import SegMetrics
from segcli.ops.tta import plain_logits
from segcli.recipe import Recipe, load_object
from segcli.report import semantic as view
from segcli.tasks import TaskData


def cross_entropy(outputs, target: torch.Tensor, ignore_index: int) -> dict[str, torch.Tensor]:
    """Pixel-wise cross-entropy averaged over the labelled pixels (float32 even under AMP)."""
    return {"loss_ce": F.cross_entropy(outputs.float(), target, ignore_index=ignore_index)}


def to_device(target, device):
    """A target tensor, or a dict of them (a recipe's prepared target), on `device`."""
    if isinstance(target, dict):
        return {key: to_device(value, device) for key, value in target.items()}
    return target.to(device, non_blocking=True)


class SemanticTask:
    """Models map images [B,3,H,W] to class scores [B,K,H,W] at the input size."""

    name = "semantic"
    score = view.SCORE
    metrics = ("miou", "pa", "mpa", "fwiou", "all")
    plots = view.PLOTS

    def __init__(self, recipe: Recipe, predict: Callable | None = None):
        self.criterion = recipe.criterion or cross_entropy
        self.prepare_target = load_object(recipe.prepare_target) if recipe.prepare_target else None
        self.predict_logits = predict or plain_logits  # (model, images) -> logits [B,K,H,W]

    def build_data(self, cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val")) -> TaskData:
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
            transform, prepare = self._pipeline(split, cfg)
            sets[split] = SemanticSamples(
                source, transform, k, cfg.ignore_index, cfg.binary, prepare
            )
        return TaskData(sets.get("train"), sets.get("val"), sources.get("val"), names)

    def _pipeline(self, split: str, cfg: TrainConfig) -> tuple:
        """(transform, prepare_target) of a split: the recipe's target preparation runs in the
        loader workers of the train split, where the loss needs it."""
        if split != "train":
            return eval_transform(), None
        transform = semantic_train_transform(
            cfg.img_size, cfg.scale_range, cfg.hflip, cfg.ignore_index, cfg.elastic
        )
        return transform, self.prepare_target

    def losses(self, model, batch, device, precision, cfg: TrainConfig) -> dict[str, torch.Tensor]:
        images, target = batch
        images = images.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = to_device(target, device)
        with precision.autocast():
            outputs = model(images)
        return self.criterion(outputs, target, cfg.ignore_index)

    def predict_batch(self, model, batch, device, precision) -> torch.Tensor:
        """Class scores [B,K,H,W] (float32) of a loader batch (images, masks)."""
        with precision.autocast():
            return self.predict_logits(model, batch[0].to(device, non_blocking=True))

    @torch.no_grad()
    def predict(self, model, images: Sequence[np.ndarray], device) -> list[np.ndarray]:
        """Class ids [H, W] (uint8) of RGB uint8 images of one size, run as one batch."""
        transform = eval_transform()
        batch = torch.stack([transform(image=image)["image"] for image in images]).to(device)
        model.eval()
        return list(self.predict_logits(model, batch).argmax(1).to(torch.uint8).cpu().numpy())

    def evaluator(self, data: TaskData, cfg: TrainConfig, device) -> SemanticEvaluator:
        return SemanticEvaluator(len(data.class_names), cfg.ignore_index, device)


def _shapes_count(cfg: TrainConfig, split: str) -> int:
    return cfg.shapes_train if split == "train" else cfg.shapes_val


class SemanticEvaluator:
    """The confusion matrix of argmax predictions, summed on the device over batches and
    ranks; summarize() gives SegMetrics' scores and the matrix (`confusion`, a list)."""

    def __init__(self, num_classes: int, ignore_index: int, device):
        self.num_classes, self.ignore_index, self.device = num_classes, ignore_index, device
        self.reset()

    def reset(self) -> None:
        self.metrics = SegMetrics(self.num_classes, self.ignore_index)

    def process(self, batch, outputs: torch.Tensor) -> None:
        self.metrics.update(outputs.argmax(1), batch[1].to(outputs.device, non_blocking=True))

    def summarize(self) -> dict:
        self.metrics.all_reduce(self.device)
        conf = self.metrics.confusion_matrix()
        return {**self.metrics.compute(), "confusion": conf.tolist()}
