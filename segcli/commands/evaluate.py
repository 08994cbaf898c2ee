"""`segcli eval`: a checkpoint on a dataset's val split, or saved label PNGs against ground
truth."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import torch

from segcli import io, tasks
from segcli.data import IGNORE_INDEX
from segcli.data.folders import pair_by_stem
from segcli.data.images import read_mask
from segcli.engine import checkpoint
from segcli.engine.device import select_device, select_precision
from segcli.engine.distributed import DistInfo
from segcli.errors import ConfigError, DataError
from segcli.metrics import SegMetrics
from segcli.report.worst import worst_instances, worst_label_pairs, worst_semantic
from segcli.tasks import Task
from segcli.tasks.evaluation import run_evaluation


def evaluate_checkpoint(
    path: Path,
    data: str | None,
    device_name: str = "auto",
    workers: int = 2,
    predict=None,
    sets: Iterable[str] = (),
    save_json: Path | None = None,
    metric: str | None = None,
    worst: int = 0,
) -> tuple[dict, tuple[str, ...], Task, list]:
    """Scores of a checkpoint on the val split of `data` (default: the data it was trained on).

    `predict`: a semantic prediction function (TTA, CRF: segcli.ops.tta); `sets`: model
    options to change (`output_stride=8`); `save_json`: where to write the COCO results of an
    instance model; `metric`: the score asked for, checked against the task before anything
    runs; `worst`: how many of the worst images to draw for the report (segcli.report.worst).
    Returns (result, class names, task: segcli.tasks.Task, the worst images: [] for 0).
    """
    device = select_device(device_name)
    model, recipe, cfg, names, _ = checkpoint.restore_model(path, device, sets)
    task = tasks.for_recipe(recipe, predict)
    check_metric(metric, task.metrics, f"{path}, a {recipe.name} checkpoint,")
    if save_json is not None and task.name != "instance":
        raise ConfigError(f"--save-json writes COCO results of instance recipes, not {recipe.name}")
    if data:
        cfg = dataclasses.replace(cfg, data=data)
    cfg = dataclasses.replace(cfg, num_classes=len(names), workers=workers)
    task_data = task.build_data(cfg, splits=("val",))
    _check_classes(cfg.data, task_data.class_names, names)
    precision = select_precision(device, cfg.amp)
    result, evaluator = run_evaluation(task, model, task_data, cfg, device, precision, DistInfo())
    if task.name == "instance":
        if save_json is not None:
            io.write_json(save_json, evaluator.results, indent=None)
        examples = _worst_instances(task_data, names, evaluator.results, worst)
    else:
        examples = worst_semantic(task, model, task_data.val_source, len(names), device, worst, cfg)
    return result, names, task, examples


def _worst_instances(task_data, names, detections: list[dict], worst: int) -> list:
    source = task_data.val_source
    index = {source.image_id(i): i for i in range(len(source))}
    return worst_instances(
        source.coco(),
        detections,
        worst,
        names,
        task_data.category_ids,
        lambda image_id: source.load_image(index[image_id]),
    )


def check_metric(metric: str | None, metrics: tuple[str, ...], what: str) -> None:
    """`--metric` must be one of the task's `metrics`."""
    if metric is not None and metric not in metrics:
        raise ConfigError(f"--metric {metric}: {what} reports {', '.join(metrics)}")


BACKGROUND_NAMES = {"background", "_background_", "__background__"}


def _check_classes(data: str, found, trained) -> None:
    """The dataset's classes are the checkpoint's: as many, with the same names where both
    name them (generated `class_<i>` names match anything; class 0 may be spelled as any
    background name, e.g. labelme's `_background_`)."""
    if len(found) != len(trained):
        raise DataError(
            f"{data}: has {len(found)} classes but the checkpoint was trained on {len(trained)}"
        )
    for i, (mine, theirs) in enumerate(zip(found, trained)):
        generated = f"class_{i}" in (mine, theirs)
        background = i == 0 and {mine, theirs} <= BACKGROUND_NAMES
        if mine != theirs and not generated and not background:
            raise DataError(
                f"{data}: class {i} is '{mine}' but the checkpoint was trained on '{theirs}' "
                f"(its classes: {', '.join(trained)})"
            )


def evaluate_label_folders(
    pred_dir: Path, gt_dir: Path, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> dict:
    """Scores of saved label PNGs in `pred_dir` against `gt_dir`, paired by file stem."""
    metrics = SegMetrics(num_classes, ignore_index)
    for pred_path, gt_path in pair_by_stem(pred_dir, gt_dir):
        pred, gt = read_mask(pred_path), read_mask(gt_path)
        if pred.shape != gt.shape:
            raise DataError(
                f"{pred_path}: prediction is {pred.shape[1]}x{pred.shape[0]} but "
                f"{gt_path.name} is {gt.shape[1]}x{gt.shape[0]}"
            )
        _check_range(pred, num_classes, None, pred_path)
        _check_range(gt, num_classes, ignore_index, gt_path)
        metrics.update(torch.from_numpy(pred.astype("int64")), torch.from_numpy(gt.astype("int64")))
    result = metrics.compute()
    return {**result, "confusion": metrics.confusion_matrix().tolist()}


def _check_range(label, num_classes: int, ignore_index: int | None, path: Path) -> None:
    bad = (label >= num_classes) & (label != ignore_index if ignore_index is not None else True)
    if bad.any():
        value = int(label[bad][0])
        raise DataError(
            f"{path}: label value {value} >= --num-classes {num_classes}"
            + (f" (ignore index is {ignore_index})" if ignore_index is not None else "")
        )


def worst_label_folders(
    pred_dir: Path, gt_dir: Path, num_classes: int, ignore_index: int, worst: int
) -> list:
    """The `worst` worst label PNG pairs (checked by evaluate_label_folders) for the report."""
    pairs = (
        (pred_path.stem, read_mask(gt_path), read_mask(pred_path))
        for pred_path, gt_path in pair_by_stem(pred_dir, gt_dir)
    )
    return worst_label_pairs(pairs, num_classes, ignore_index, worst)
