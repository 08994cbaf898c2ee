"""The task layer: one typed interface over both tasks, the one evaluation loop (pinned to the
numbers the per-task loops gave before it), and the recipe hooks on the data path."""

import inspect

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from segcli.config import TrainConfig
from segcli.data.loader import train_loader
from segcli.engine.device import select_precision
from segcli.engine.distributed import DistInfo
from segcli.recipe import get_recipe
from segcli.recipes.nets.unet import border_weight_map, border_weight_target, weighted_cross_entropy
from segcli.tasks import Evaluator, Task, for_recipe
from segcli.tasks.evaluation import run_evaluation
from segcli.tasks.instance import InstanceTask
from segcli.tasks.semantic import SemanticTask

from helpers import TINY_RCNN

CPU = torch.device("cpu")
METHODS = ("build_data", "losses", "predict_batch", "predict", "evaluator")


def test_both_tasks_satisfy_the_protocol_with_one_signature_per_method():
    built = [for_recipe(get_recipe("unet")), for_recipe(get_recipe("mask_rcnn"))]
    assert [type(t) for t in built] == [SemanticTask, InstanceTask]
    for task in built:
        assert isinstance(task, Task)
        assert task.score in ("miou", "mask_ap") and task.metrics[-1] == "all"
    for name in METHODS:
        wanted = inspect.signature(getattr(Task, name))
        found = {inspect.signature(getattr(cls, name)) for cls in (SemanticTask, InstanceTask)}
        assert {tuple(s.parameters) for s in found} == {tuple(wanted.parameters)}, name


def test_predict_functions_are_for_semantic_tasks_only():
    from segcli.errors import ConfigError
    from segcli.ops.tta import tta_predictor

    with pytest.raises(ConfigError, match="apply to semantic recipes, not mask_rcnn"):
        for_recipe(get_recipe("mask_rcnn"), tta_predictor())


def evaluate(recipe_name: str, cfg: TrainConfig, options: dict, prepare=None):
    torch.manual_seed(0)
    recipe = get_recipe(recipe_name)
    task = for_recipe(recipe)
    data = task.build_data(cfg, splits=("val",))
    model = recipe.build_model(len(data.class_names), **options).eval()
    if prepare:
        prepare(model)
    result, evaluator = run_evaluation(
        task, model, data, cfg, CPU, select_precision(CPU, False), DistInfo()
    )
    assert isinstance(evaluator, Evaluator)
    return result, evaluator


def test_semantic_evaluation_equals_the_per_task_loop_it_replaced():
    """Numbers of the semantic task's own `validate` before the redesign, same seed."""
    cfg = TrainConfig(recipe="unet", img_size=32, shapes_val=3, workers=0, amp=False)
    result, _ = evaluate("unet", cfg, {"base": 4})
    assert result["confusion"] == [[862, 0, 1887, 0], [97, 0, 116, 0], [0, 0, 0, 0], [5, 0, 105, 0]]
    assert result["miou"] == pytest.approx(0.07558751315327955, rel=1e-12)
    assert result["fwiou"] == pytest.approx(0.2705599917426634, rel=1e-12)


def test_instance_evaluation_equals_the_per_task_loop_it_replaced():
    """MS R-CNN, untrained, every detection kept: the numbers of the instance task's own
    `evaluate` before the redesign, the recipe's extra metrics included."""
    cfg = TrainConfig(recipe="ms_rcnn", img_size=64, shapes_val=2, workers=0, amp=False)
    options = {**get_recipe("ms_rcnn").options, **TINY_RCNN, "min_size": 64, "max_size": 64}

    def keep_everything(model):
        model.roi_heads.score_thresh = 0.0

    result, evaluator = evaluate("ms_rcnn", cfg, options, keep_everything)
    assert result["detections"] == len(evaluator.results) == 200
    assert [r["image_id"] for r in evaluator.results] == sorted(
        r["image_id"] for r in evaluator.results
    )
    assert result["maskiou_pearson_all"] == pytest.approx(0.13948104769492078, rel=1e-6)
    assert result["maskiou_matched"] == 0 and result["mask_ap_plain"] == 0.0
    assert any(line.startswith("MaskIoU vs actual IoU") for line in result["notes"])


# Two samples: touching objects of two classes with an ignored row, and two close bars.
TARGET = np.zeros((2, 24, 24), np.int64)
TARGET[0, 3:10, 3:10], TARGET[0, 3:10, 12:20], TARGET[0, 14:20, 5:12], TARGET[0, 0] = 1, 2, 1, 255
TARGET[1, 5:18, 5:9], TARGET[1, 5:18, 11:15] = 2, 2
OLD_LOSS = 1.3942910432815552  # the loss computing the map inside, on the CPU, before


def test_prepared_border_weights_give_the_loss_of_the_weights_computed_in_the_loss():
    logits = torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    target = default_collate([border_weight_target(torch.from_numpy(t), 255) for t in TARGET])
    assert target["weight"].dtype == torch.float32 and target["weight"].shape == (2, 24, 24)
    loss = weighted_cross_entropy(logits, target, 255)["loss_ce"]
    assert float(loss) == pytest.approx(OLD_LOSS, rel=1e-6)


def test_border_weights_come_out_of_loader_workers_and_reach_the_loss():
    cfg = TrainConfig(
        recipe="unet", img_size=32, shapes_train=4, workers=2, amp=False, elastic=False
    )
    task = for_recipe(get_recipe("unet"))
    data = task.build_data(cfg, splits=("train", "val"))
    assert data.val[0][1].dtype == torch.long  # evaluation reads the plain mask
    loader = train_loader(data.train, 2, cfg.workers, cfg.seed)
    assert loader.num_workers == 2
    images, target = next(iter(loader))
    assert set(target) == {"mask", "weight"} and target["weight"].shape == (2, 32, 32)
    for mask, weight in zip(target["mask"], target["weight"]):
        assert torch.equal(weight, torch.from_numpy(border_weight_map(mask.numpy(), 255)))
    assert (target["weight"] > 1).any()  # class balance and borders weigh some pixels up
    model = get_recipe("unet").build_model(len(data.class_names), base=4)
    losses = task.losses(model, (images, target), CPU, select_precision(CPU, False), cfg)
    assert set(losses) == {"loss_ce"} and torch.isfinite(losses["loss_ce"])
