"""`segcli infer`: run a checkpoint on images (files or folders) and write the results."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from segcli import io, tasks
from segcli.data.images import collect_sources, is_video, read_image
from segcli.engine import checkpoint
from segcli.engine.device import select_device
from segcli.errors import ConfigError
from segcli.progress import shown_on, tracked
from segcli.report.annotate import (
    InstanceAnnotator,
    SemanticAnnotator,
    annotate_video,
)

DEFAULT_SCORE_THRESHOLD = 0.5


def infer(
    checkpoint_path: Path,
    sources: list[Path],
    out_dir: Path,
    device_name: str = "auto",
    console: Console | None = None,
    predict=None,
    score_threshold: float | None = None,
    splash: bool = False,
) -> list[Path]:
    """Annotate every image and video (segcli.report.annotate says what is written per task)
    and return the main output of each input;
    `predict` may add CRF refinement or TTA to semantic models (segcli.ops.tta);
    `score_threshold` and `splash` are for instance models. Videos become `<stem>_overlay`
    (or `_splash`) videos of the same format, written frame by frame."""
    files = collect_sources(sources)
    device = select_device(device_name)
    model, recipe, cfg, names, payload = checkpoint.restore_model(checkpoint_path, device)
    annotator = _annotator(recipe, model, names, payload, device, predict, score_threshold, splash)
    kind = "splash" if splash else "overlay"  # _annotator: --splash on instance only
    return annotate_files(files, annotator, out_dir, console or Console(), kind)


def annotate_files(files: list[Path], annotator, out_dir: Path, console: Console, kind: str):
    """Run `annotator` (segcli.report.annotate) on each image and video of `files` and move
    its outputs into `out_dir` when all succeeded; videos become `<stem>_<kind>` videos.
    Returns the main output of each input."""
    images = [f for f in files if not is_video(f)]
    written = []
    with io.staged_files(out_dir) as staging, shown_on(console):  # no partial output on errors
        for path in tracked(images, "infer"):
            written += annotator.image(read_image(path), staging, path.stem)
        for path in (f for f in files if is_video(f)):
            target = staging / f"{path.stem}_{kind}{path.suffix.lower()}"
            written.append(annotate_video(path, target, annotator.frame, console))
        if images:
            annotator.finish(staging)
    return [out_dir / path.relative_to(staging) for path in written]


def _annotator(recipe, model, names, payload, device, predict, score_threshold, splash):
    task = tasks.for_recipe(recipe, predict)
    if task.name == "instance":
        threshold = DEFAULT_SCORE_THRESHOLD if score_threshold is None else score_threshold
        return InstanceAnnotator(
            task, model, names, payload.get("category_ids"), device, threshold, splash
        )
    for flag, given in (("--splash", splash), ("--score-threshold", score_threshold is not None)):
        if given:
            raise ConfigError(f"{flag} applies to instance recipes, not {recipe.name}")
    return SemanticAnnotator(task, model, names, device)
