"""`--resume auto|PATH`: find the run to continue and its config, and refuse, before anything
is written, a resume that would train something else than the run did.

The saved config is the base of a resumed run; flags and `--set` given now are layered on it.
Only settings that change where or how long a run trains (RESUME_NEUTRAL) may differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segcli.config import (
    TrainConfig,
    config_from_dict,
    config_layers,
    merge_layers,
    read_config_file,
)
from segcli.engine import run_dirs
from segcli.errors import ConfigError, DataError
from segcli.recipe import Recipe

RESUME_NEUTRAL = {
    "resume", "out", "device", "workers", "weights", "pretrained", "log_every", "save_every",
    "val_every", "iters", "epochs", "amp", "compile",
}  # fmt: skip


@dataclass(frozen=True)
class ResumePoint:
    path: Path  # the last.pt
    run_dir: Path
    payload: dict
    saved: TrainConfig  # the run's own config


@dataclass(frozen=True)
class TrainingPlan:
    """What `segcli train` will do: its config, the layers it came from, the resume point."""

    cfg: TrainConfig
    layers: list
    resume: ResumePoint | None = None


def resolve_training(
    recipe: Recipe, flags: Mapping[str, Any], sets: Iterable[str], log
) -> TrainingPlan:
    """The config of `segcli train` (a resumed run's own, with the flags given now on top; a
    new run's, with the architecture of the checkpoint --weights names and the `config` file
    among the flags) and the point to resume from."""
    sets = list(sets)
    flags = dict(flags)
    path = flags.pop("config", None)
    from_file = read_config_file(path, recipe) if path else None
    layers = config_layers(recipe, flags, sets, from_file=from_file)
    cfg = merge_layers(recipe, layers)
    if cfg.resume and from_file:
        raise ConfigError("--config starts a new run; a resumed run keeps its own config")
    if cfg.resume:
        point = locate(cfg, recipe, log)
        layers = config_layers(recipe, flags, sets, base=point.saved)
        cfg = merge_layers(recipe, layers)
        check_changes(point, cfg, log)
        return TrainingPlan(cfg, layers, point)
    if not cfg.weights:
        return TrainingPlan(cfg, layers)
    from segcli.engine.weights import checkpoint_architecture  # torch: after the checks above

    inherited = checkpoint_architecture(cfg.weights, recipe)
    if inherited:
        log.info(f"--weights {cfg.weights}: its model options are this run's defaults")
        layers = config_layers(recipe, flags, sets, inherited=inherited, from_file=from_file)
        cfg = merge_layers(recipe, layers)
    return TrainingPlan(cfg, layers)


def locate(cfg: TrainConfig, recipe: Recipe, log) -> ResumePoint:
    """The checkpoint `cfg.resume` names (`auto`: the run in --out, else the latest run of the
    recipe that has a last.pt), read and checked to be a resumable run of `recipe`."""
    if cfg.resume == "auto":
        run_dir = Path(cfg.out) if cfg.out else _latest_resumable(recipe, log)
        path = run_dir / "last.pt"
        if not path.is_file():
            raise DataError(
                f"{path}: no checkpoint to resume from (--resume auto never starts afresh; "
                "drop --resume to start a new run)"
            )
    else:
        path = Path(cfg.resume)
        if not path.is_file():
            raise DataError(f"{path}: checkpoint to resume from not found")
        run_dir = Path(cfg.out) if cfg.out else path.parent
    from segcli.engine import checkpoint  # torch: after the checks above

    payload = checkpoint.load(path)
    if "optimizer" not in payload or "progress" not in payload:
        raise DataError(
            f"{path}: holds weights only (best.pt?); resume from last.pt, or start a new run "
            "with --weights"
        )
    if payload.get("recipe") != recipe.name:
        raise ConfigError(f"{path}: is a {payload.get('recipe')} run, not {recipe.name}")
    return ResumePoint(path, run_dir, payload, config_from_dict(payload["config"]))


def _latest_resumable(recipe: Recipe, log) -> Path:
    """The highest-numbered run of `recipe` with a last.pt; newer folders without one (a run
    stopped before its first save) are named, not silently passed over."""
    folders = run_dirs.run_folders(recipe.name)
    usable = [f for f in folders if (f / "last.pt").is_file()]
    if not usable:
        raise DataError(
            f"{run_dirs.RUNS_ROOT / recipe.name}: no {recipe.name} run with a last.pt to resume; "
            "drop --resume to start a new run"
        )
    chosen = usable[-1]
    newer = [str(f) for f in folders if run_dirs.run_number(f) > run_dirs.run_number(chosen)]
    skipped = f"; newer {', '.join(newer)} without last.pt passed over" if newer else ""
    log.info(f"--resume auto: {chosen}, the latest {recipe.name} run with a last.pt{skipped}")
    return chosen


def check_changes(point: ResumePoint, cfg: TrainConfig, log) -> None:
    """Refuse, in one line, every setting that differs from the run's own other than where and
    how long it trains; say which of those changed."""
    diff = settings_diff(point.saved, cfg)
    for key, old, new in diff:
        if key in RESUME_NEUTRAL and key != "resume":
            log.info(f"resuming with {key}: {old!r} -> {new!r}")
    changes = [c for c in diff if c[0] not in RESUME_NEUTRAL]
    if changes:
        shown = "; ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes)
        raise ConfigError(
            f"{point.path}: cannot resume with other settings than the run's ({shown}); "
            "drop those flags to continue it, or drop --resume to start a new run"
        )


def check_classes(point: ResumePoint, class_names: tuple[str, ...]) -> None:
    """The dataset's classes must still be the run's."""
    saved = tuple(point.payload.get("class_names", ()))
    if saved != tuple(class_names):
        raise DataError(
            f"{point.saved.data}: its classes ({', '.join(class_names)}) are not the run's "
            f"({', '.join(saved)}); {point.path} cannot continue on it"
        )


def settings_diff(old: TrainConfig, new: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every setting and model option (as `model.<name>`) that differs."""
    a, b = _flat(old), _flat(new)
    return [(k, a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]


def _flat(cfg: TrainConfig) -> dict[str, Any]:
    values = cfg.to_dict()
    model = values.pop("model")
    return {**values, **{f"model.{k}": v for k, v in model.items()}}
