"""Panoptic segmentation from two checkpoints: a semantic model gives the stuff, an instance
model the things, fused by the Panoptic FPN heuristic (segcli.ops.panoptic). `segcli infer
--panoptic` writes COCO panoptic files and overlays; `segcli eval --panoptic` scores the fusion
on the built-in shapes data, whose panoptic ground truth segcli.data.shapes_panoptic builds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from segcli import tasks, viz
from segcli.commands.infer import annotate_files
from segcli.config import BUILTIN_DATA
from segcli.data.coco import ShapesInstances, mask_box
from segcli.data.images import collect_sources
from segcli.data.panoptic import save_segment_png, segments_info, write_panoptic_json
from segcli.data.shapes_panoptic import panoptic_target
from segcli.data.sources import SHAPES_SEED
from segcli.engine import checkpoint
from segcli.engine.device import select_device
from segcli.errors import ConfigError, DataError
from segcli.metrics.panoptic import PanopticQuality
from segcli.ops.panoptic import (
    SCORE_THRESHOLD,
    PanopticClasses,
    fuse_panoptic,
    match_classes,
    stuff_area_for,
)
from segcli.progress import tracked

PANOPTIC_NAME = "panoptic"  # infer writes panoptic.json beside the PNG folder panoptic/


@dataclass(frozen=True)
class PanopticModels:
    """A semantic and an instance model, restored, and the panoptic categories of their
    classes; calling it on an RGB uint8 image [H, W, 3] gives fuse_panoptic's segment ids
    [H, W] and segments."""

    semantic: object  # torch modules in eval mode, on `device`
    instance: object
    classes: PanopticClasses
    paths: tuple[Path, Path]  # semantic, instance
    data: tuple[str, str]  # the data each was trained on
    img_size: int  # the semantic run's, the size of its shapes images
    shapes_val: int
    device: object
    tasks: tuple  # segcli.tasks.Task of each model; the semantic one may add TTA, CRF, ...
    score_threshold: float

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        (label,) = self.tasks[0].predict(self.semantic, [rgb], self.device)
        (found,) = self.tasks[1].predict(self.instance, [rgb], self.device)
        return fuse_panoptic(
            label,
            found["scores"],
            found["labels"],
            found["masks"],
            self.classes,
            score_threshold=self.score_threshold,
            stuff_area=stuff_area_for(*label.shape),
        )


def load_panoptic_models(
    paths: Sequence[Path], device, predict=None, score_threshold: float | None = None
) -> PanopticModels:
    """The models of two checkpoints, one semantic and one instance, in either order; their
    classes are paired by name (match_classes) and at least one must be shared."""
    restored = [checkpoint.restore_model(path, device) for path in paths]
    kinds = [recipe.task for _, recipe, *_ in restored]
    if sorted(kinds) != ["instance", "semantic"]:
        raise ConfigError(
            f"--panoptic fuses a semantic checkpoint (stuff) with an instance checkpoint "
            f"(things), but {paths[0]} and {paths[1]} are both {kinds[0]}"
        )
    order = (0, 1) if kinds[0] == "semantic" else (1, 0)
    sem_model, sem_recipe, sem_cfg, sem_names, _ = restored[order[0]]
    inst_model, inst_recipe, inst_cfg, inst_names, payload = restored[order[1]]
    sem_path, inst_path = (Path(paths[i]) for i in order)
    shared = set(sem_names) & set(inst_names[1:])
    if not shared:
        raise DataError(
            f"{inst_path}: no class name in common with {sem_path} (instance classes "
            f"{', '.join(inst_names[1:])}; semantic classes {', '.join(sem_names)}), so no "
            "thing class can be paired"
        )
    try:
        classes = match_classes(sem_names, inst_names, payload.get("category_ids"))
    except ValueError as exc:
        raise DataError(f"{inst_path}: {exc}") from None
    return PanopticModels(
        sem_model,
        inst_model,
        classes,
        (sem_path, inst_path),
        (sem_cfg.data, inst_cfg.data),
        sem_cfg.img_size,
        sem_cfg.shapes_val,
        device,
        (tasks.for_recipe(sem_recipe, predict), tasks.for_recipe(inst_recipe)),
        SCORE_THRESHOLD if score_threshold is None else score_threshold,
    )


class PanopticAnnotator:
    """What infer --panoptic writes per image: `panoptic/<stem>.png` (segment ids, COCO
    panoptic) and `<stem>_overlay.jpg`; then `panoptic.json` for all images, image ids in
    input order from 1, as results.json."""

    def __init__(self, models: PanopticModels, file_names: dict[str, str]):
        self.models, self.file_names = models, file_names  # stem -> input file name
        self.names = {c["id"]: c["name"] for c in models.classes.categories}
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        return panoptic_overlay(rgb, *self.models(rgb), self.names)

    def image(self, rgb: np.ndarray, out_dir: Path, stem: str) -> list[Path]:
        ids, segments = self.models(rgb)
        png = out_dir / PANOPTIC_NAME / f"{stem}.png"
        save_segment_png(png, ids)
        overlay = panoptic_overlay(rgb, ids, segments, self.names)
        viz.save_jpeg(out_dir / f"{stem}_overlay.jpg", overlay)
        image_id = len(self.images) + 1
        height, width = ids.shape
        name = self.file_names.get(stem, stem)
        self.images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        segments = segments_info(ids, segments)
        self.annotations.append(
            {"image_id": image_id, "file_name": png.name, "segments_info": segments}
        )
        return [png]

    def finish(self, out_dir: Path) -> None:
        path = out_dir / f"{PANOPTIC_NAME}.json"
        write_panoptic_json(path, self.images, self.annotations, self.models.classes.categories)


def panoptic_overlay(rgb: np.ndarray, ids: np.ndarray, segments: list[dict], names) -> np.ndarray:
    """Stuff in its category's colour with a legend, then each thing in its own colour with its
    box, category name and score (`names`: category id -> name)."""
    stuff = np.zeros(ids.shape, np.int32)
    for seg in (s for s in segments if not s["isthing"]):
        stuff[ids == seg["id"]] = seg["category_id"]
    legend = {s["category_id"]: names[s["category_id"]] for s in segments if not s["isthing"]}
    out = viz.overlay_with_legend(rgb, stuff, legend)
    things = [s for s in segments if s["isthing"]]
    masks = np.array([ids == s["id"] for s in things], bool).reshape(-1, *ids.shape)
    return viz.draw_instances(
        out,
        masks,
        np.array([mask_box(m) for m in masks]).reshape(-1, 4),
        np.arange(len(things)),
        [names[s["category_id"]] for s in things],
        np.array([s["score"] for s in things]),
    )


def infer_panoptic(
    paths: Sequence[Path],
    sources: list[Path],
    out_dir: Path,
    device_name: str = "auto",
    console: Console | None = None,
    predict=None,
    score_threshold: float | None = None,
) -> list[Path]:
    """Fuse the two checkpoints' predictions on every image and video of `sources` (see
    PanopticAnnotator); returns the segment PNG of each image and each video written."""
    files = collect_sources(sources)
    models = load_panoptic_models(paths, select_device(device_name), predict, score_threshold)
    annotator = PanopticAnnotator(models, {f.stem: f.name for f in files})
    return annotate_files(files, annotator, out_dir, console or Console(), "overlay")


def evaluate_shapes_panoptic(
    paths: Sequence[Path], device_name: str = "auto", predict=None
) -> dict:
    """PanopticQuality.compute() of the fused checkpoints on the shapes val split, at the
    semantic run's image size and val count (the instance model resizes its input itself)."""
    models = load_panoptic_models(paths, select_device(device_name), predict)
    for path, data in zip(models.paths, models.data):
        if data != BUILTIN_DATA:
            raise ConfigError(
                f"{path}: trained on {data}; eval --panoptic scores the built-in shapes data. "
                "For other data, run infer --panoptic and eval --gt-panoptic/--pred-panoptic"
            )
    source = ShapesInstances("val", models.img_size, models.shapes_val, SHAPES_SEED)
    metric = PanopticQuality(models.classes.categories)
    for index in tracked(range(len(source)), "eval"):
        sample = source.load(index)
        metric.update(*models(sample["image"]), *panoptic_target(sample, models.classes))
    return metric.compute()
