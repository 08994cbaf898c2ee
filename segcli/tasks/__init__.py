"""The task layer: what semantic and instance segmentation do differently (data, losses,
prediction, evaluation) behind one typed interface, `Task`, with one signature per method.

`for_recipe(recipe)` builds a recipe's task; `segcli.tasks.evaluation.run_evaluation` is the one
evaluation loop over any task's `Evaluator`. What a task shows of its scores (tables, plots,
sample overlays) is segcli.report's: `segcli.report.view(task.name)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from segcli.recipe import load_object

if TYPE_CHECKING:  # this module stays torch-free: the implementations load on use
    import numpy as np
    import torch

    from segcli.config import TrainConfig
    from segcli.recipe import Recipe

IMPLEMENTATIONS = {
    "semantic": "segcli.tasks.semantic:SemanticTask",
    "instance": "segcli.tasks.instance:InstanceTask",
}


@dataclass
class TaskData:
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    val_source: object
    class_names: tuple[str, ...]
    collate_fn: object = None
    category_ids: tuple[int, ...] | None = None  # instance data: the COCO id of labels 1..K


@runtime_checkable
class Evaluator(Protocol):
    """Scores accumulated over batches, as Detectron2's DatasetEvaluator."""

    def reset(self) -> None:
        """Forget what was processed."""

    def process(self, batch, outputs) -> None:
        """Take one loader batch and the task's `predict_batch` outputs for it."""

    def summarize(self) -> dict:
        """The scores of everything processed on every rank (gathered under DDP)."""


@runtime_checkable
class Task(Protocol):
    """One kind of segmentation. Attributes: `name` (the recipes' `task`), `score` (the result
    key that picks best.pt), `metrics` (what `eval --metric` takes), `plots` (the files
    training writes beside the checkpoints)."""

    name: str
    score: str
    metrics: tuple[str, ...]
    plots: tuple[str, ...]

    def build_data(self, cfg: TrainConfig, splits: tuple[str, ...] = ("train", "val")) -> TaskData:
        """The datasets of `splits` (checked before any step) and the class names."""

    def losses(self, model, batch, device, precision, cfg: TrainConfig) -> dict[str, torch.Tensor]:
        """The named training losses of one loader batch (float32)."""

    def predict_batch(self, model, batch, device, precision) -> Any:
        """The outputs of one loader batch that the task's evaluator processes."""

    def predict(self, model, images: Sequence[np.ndarray], device) -> list:
        """One prediction per RGB uint8 image [H, W, 3] (infer, samples, panoptic)."""

    def evaluator(self, data: TaskData, cfg: TrainConfig, device) -> Evaluator:
        """A fresh evaluator of the val split of `data`."""


def for_recipe(recipe: Recipe, predict: Callable | None = None) -> Task:
    """The task of `recipe`, holding its criterion and hooks; `predict` is a semantic
    prediction function (TTA, CRF, superpixels: segcli.ops.tta), None for plain logits."""
    return load_object(IMPLEMENTATIONS[recipe.task])(recipe, predict)
