"""`segcli eval`'s ways of scoring, behind the command line's options: a checkpoint on a val
split, label PNGs against label PNGs, COCO results files (no model, no torch), COCO panoptic
files and two fused checkpoints; then one way of showing and writing the scores."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console

from segcli import io
from segcli.errors import ConfigError, DataError, SegcliError

# result keys left out of --json: the confusion matrix, the precision-recall curves and the
# report's notes
BULKY = ("confusion", "mask_pr50", "mask_pr75", "box_pr50", "box_pr75", "notes")
MODEL_ONLY = "--tta, --crf, --superpixels and --set need a checkpoint"


def predictor(tta: bool, scales, flip: bool, crf: bool, crf_items, superpixels=None):
    """The test-time prediction function of --tta/--crf/--superpixels (None: plain logits)."""
    from segcli.ops.tta import V3_SCALES, build_predictor

    if scales and not tta:
        raise ConfigError("--tta-scale needs --tta")
    scales = (scales or V3_SCALES) if tta else None
    return build_predictor(scales, flip, crf, crf_items or [], superpixels)


def score_label_folders(pred, gt, num_classes, ignore_index, model_flags, worst, metric):
    """--pred/--gt: label PNGs scored against label PNGs, and the `worst` worst pairs."""
    from segcli.commands import evaluate
    from segcli.tasks.semantic import SemanticTask

    if not (pred and gt and num_classes):
        raise ConfigError("--pred, --gt and --num-classes go together")
    if model_flags:
        raise ConfigError(f"{MODEL_ONLY}, not --pred/--gt")
    evaluate.check_metric(metric, SemanticTask.metrics, "--pred/--gt")
    result = evaluate.evaluate_label_folders(pred, gt, num_classes, ignore_index)
    examples = evaluate.worst_label_folders(pred, gt, num_classes, ignore_index, worst)
    return result, tuple(f"class_{i}" for i in range(num_classes)), "semantic", examples


def score_result_files(gt_json, pred_json, metric, model_flags, worst: int):
    """--gt-json/--pred-json: COCO results scored by faster-coco-eval, no model, no torch;
    with the `worst` worst images drawn on a grey background (the images are not at hand)."""
    from segcli.metrics.coco import evaluate_results, read_result_files
    from segcli.report.worst import worst_instances

    if not (gt_json and pred_json):
        raise ConfigError("--gt-json and --pred-json go together")
    if model_flags:
        raise ConfigError(f"{MODEL_ONLY}, not --gt-json/--pred-json")
    kinds = {"mask-ap": ("mask",), "box-ap": ("box",), None: None}.get(metric)
    if metric and kinds is None:
        raise ConfigError(f"--metric {metric}: COCO results give mask-ap or box-ap")
    gt, results, kinds, names = read_result_files(gt_json, pred_json, kinds)
    result = evaluate_results(gt, results, kinds)
    with_masks = "mask" in kinds  # box-only results have no masks to draw
    if with_masks:
        result |= recipes_extra_metrics(gt, results, pred_json)
    category_ids = sorted(gt.getCatIds())
    examples = worst_instances(gt, results, worst if with_masks else 0, names, category_ids)
    return result, names, "instance", examples


def recipes_extra_metrics(gt, results: list[dict], pred_json) -> dict:
    """Every recipe's extra_metrics of saved results (each gives nothing for results without
    its model's outputs), with their report lines together."""
    from segcli.recipe import list_recipes, load_object
    from segcli.report.instance import NOTES

    extra, notes = {}, []
    for reference in dict.fromkeys(r.extra_metrics for r in list_recipes() if r.extra_metrics):
        try:
            scores = load_object(reference)(gt, results)
        except DataError as exc:
            raise DataError(f"{pred_json}: {exc}") from None
        notes += scores.pop(NOTES, [])
        extra |= scores
    return extra | ({NOTES: notes} if notes else {})


def score_checkpoint(path: Path, data, device, workers, predict, sets, save_json, worst, metric):
    """A checkpoint on the val split of `data`: (result, class names, task name, examples)."""
    from segcli.commands import evaluate

    result, names, task, examples = evaluate.evaluate_checkpoint(
        path, data, device, workers, predict, sets, save_json, metric, worst
    )
    return result, names, task.name, examples


def show_scores(scored, metric, json_out, outputs, console: Console, err_console: Console):
    """The results table and the asked-for scores on the console; --json, --plots, --report.

    `scored`: (result, class names, task name, examples); `outputs`: (plots, report, facts)."""
    from segcli.report import view as task_view
    from segcli.report.eval_outputs import write_outputs

    result, names, task_name, examples = scored
    plots, report, facts = outputs
    view = task_view(task_name)
    console.print(view.results_table(result, names, "evaluation"))
    if result.get("detections") == 0:
        err_console.print("warning: no detections to score; every AP is 0", highlight=False)
    default = view.SCORE if view.SCORE in result or "box_ap" not in result else "box_ap"
    print_scores(result, metric or default, console)  # box_ap: box-only results
    if json_out:
        kept = {k: v for k, v in result.items() if k not in BULKY}
        io.write_json(json_out, kept | {"class_names": list(names)})
    write_outputs(result, names, view, plots, report, examples, facts)
    for written in (plots, report):
        if written:
            console.print(f"wrote {written}", highlight=False)


def print_scores(result: dict, metric: str, console: Console) -> None:
    """`metric`'s value (`all`: the semantic four, or every AP-type score of an instance model)."""
    if metric == "all":
        semantic = ["pa", "mpa", "miou", "fwiou"]
        keys = (
            semantic if "miou" in result else [k for k, v in result.items() if isinstance(v, float)]
        )
    else:
        keys = [metric.replace("-", "_")]
    for key in keys:
        value = result.get(key)
        if value is None:
            raise SegcliError(f"--metric {metric}: not available for this model")
        console.print(f"{key}: {value:.4f}" if not math.isnan(value) else f"{key}: nan")


def eval_panoptic_files(files, metric, json_out, other_inputs: bool, console: Console):
    """eval --metric pq: COCO panoptic results (`files`: gt json, pred json, gt dir, pred dir)
    scored against COCO panoptic ground truth."""
    from segcli.commands.panoptic_eval import evaluate_panoptic_files

    gt_json, pred_json, gt_dir, pred_dir = files
    if metric not in (None, "pq"):
        raise ConfigError(f"--metric {metric}: COCO panoptic files give pq")
    if other_inputs or not (gt_json and pred_json):
        raise ConfigError(
            "--metric pq scores COCO panoptic files: give --gt-panoptic and --pred-panoptic "
            "(and no checkpoint, --data, --pred/--gt, --gt-json, --tta, --crf or --set), or "
            "two checkpoints with --panoptic"
        )
    result = evaluate_panoptic_files(gt_json, pred_json, gt_dir, pred_dir)
    show_panoptic(result, json_out, console)


def eval_fused(paths, metric, device, predict, json_out, other_inputs, console: Console):
    """eval --panoptic: two checkpoints fused and scored on the shapes val split."""
    from segcli.commands.panoptic import evaluate_shapes_panoptic

    if metric not in (None, "pq"):
        raise ConfigError(f"--metric {metric}: --panoptic gives pq")
    if paths[1] is None:
        raise ConfigError("--panoptic needs two checkpoints: --panoptic SEMANTIC.pt INSTANCE.pt")
    if any(other_inputs):
        raise ConfigError(
            "--panoptic scores two checkpoints on the built-in shapes val split: no --data, "
            "--pred/--gt, --gt-json, --gt-panoptic, --save-json, --set, --plots or --report"
        )
    show_panoptic(evaluate_shapes_panoptic(paths, device, predict), json_out, console)


def show_panoptic(result: dict, json_out, console: Console) -> None:
    """The panoptic quality tables and PQ, SQ and RQ; the result as JSON to `json_out`."""
    from segcli.commands.panoptic_eval import results_table

    console.print(results_table(result))
    for key in ("pq", "sq", "rq"):
        value = result[key]
        console.print(f"{key}: {value:.4f}" if not math.isnan(value) else f"{key}: nan")
    if json_out:
        io.write_json(json_out, result)
