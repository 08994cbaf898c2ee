"""A run folder and what is written into it: config, checkpoints, plots, samples, summary."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from segcli import io
from segcli.config import TrainConfig, config_diff, config_from_dict
from segcli.engine import checkpoint, distributed, runs
from segcli.errors import ConfigError, DataError
from segcli.recipe import Recipe

# Settings that may change on resume without a warning: where and how, not what, is trained.
RESUME_NEUTRAL = {"resume", "out", "device", "workers", "weights", "log_every", "save_every"}


@dataclass
class RunSession:
    run_dir: Path
    cfg: TrainConfig
    recipe: Recipe
    class_names: tuple[str, ...]
    is_main: bool
    log: object
    resume_path: Path | None = None
    resume_payload: dict | None = None
    category_ids: tuple[int, ...] | None = None  # instance data: COCO ids of labels 1..K

    def meta(self) -> dict:
        """What eval and infer need to rebuild the model from a checkpoint alone."""
        meta = {
            "recipe": self.recipe.name,
            "task": self.recipe.task,
            "config": self.cfg.to_dict(),
            "class_names": list(self.class_names),
        }
        if self.category_ids is not None:
            meta["category_ids"] = list(self.category_ids)
        return meta

    def save_last(self, payload: dict) -> None:
        if self.is_main:
            self._write(self.run_dir / "last.pt", {**payload, **self.meta()})

    def save_best(self, model, state, result: dict) -> None:
        if self.is_main:
            self._write(
                self.run_dir / "best.pt",
                {
                    "model": checkpoint.unwrap(model).state_dict(),
                    **self.meta(),
                    "progress": {"iteration": state.iteration, "epoch": state.epoch},
                    "metrics": result,
                },
            )

    @staticmethod
    def _write(path: Path, payload: dict) -> None:
        try:
            checkpoint.save(path, payload)
        except OSError as exc:
            kept = "the previous file is intact" if path.exists() else "nothing was written"
            raise DataError(
                f"{path}: could not write the checkpoint ({exc.strerror or exc}); {kept}"
            ) from None

    def resume_command(self) -> str:
        argv = [a for a in sys.argv[1:] if not a.startswith("--resume")]
        if "--out" not in argv:
            argv += ["--out", str(self.run_dir)]
        return "segcli " + shlex.join(argv + ["--resume", "auto"])

    def finish(self, model, task, data, device, state, seconds: float, last_val) -> None:
        """Plots, sample overlays and the final summary (rank 0)."""
        if not self.is_main:
            return
        rows = runs.MetricsLog(self.run_dir / "metrics.jsonl").read()
        task.write_plots(rows, last_val, self.class_names, self.run_dir)
        task.save_samples(
            checkpoint.unwrap(model),
            data.val_source,
            self.class_names,
            self.run_dir / "samples",
            device,
        )
        score = task.score_of(last_val) if last_val else float("nan")
        self.log.summary(
            [
                ("run folder", str(self.run_dir)),
                ("iterations", f"{state.iteration}"),
                ("time", f"{seconds:.1f} s"),
                (f"final {task.SCORE}", f"{score:.4f}"),
                (
                    f"best {task.SCORE}",
                    f"{state.best_score:.4f} (iteration {state.best_iteration})",
                ),
                ("checkpoints", f"{self.run_dir / 'best.pt'}, {self.run_dir / 'last.pt'}"),
                ("plots", ", ".join(str(self.run_dir / name) for name in task.PLOTS)),
                ("samples", f"{self.run_dir / 'samples'}"),
            ]
        )


def open_session(
    cfg: TrainConfig,
    recipe: Recipe,
    class_names,
    dist,
    log,
    model_bytes: int = 0,
    category_ids: tuple[int, ...] | None = None,
) -> RunSession:
    """Choose (or find) the run folder, check it can be written, load what --resume names."""
    resume_path, run_dir = _resume_target(cfg, recipe) if cfg.resume else (None, None)
    if run_dir is None:
        run_dir = _fresh_run_dir(cfg, recipe, dist)
    session = RunSession(
        run_dir, cfg, recipe, tuple(class_names), dist.is_main, log, resume_path, None, category_ids
    )
    if dist.is_main:
        # last.pt + best.pt + the temporary copy while writing: weights x ~4, optimizer included
        problem = io.check_writable(run_dir, reserve_bytes=4 * model_bytes)
        if problem:
            raise DataError(problem)
    if resume_path is not None:
        session.resume_payload = _load_resume(resume_path, cfg, recipe, log)
        if dist.is_main:
            runs.MetricsLog(run_dir / "metrics.jsonl").truncate_after(
                session.resume_payload["progress"]["iteration"]
            )
    if dist.is_main:
        runs.write_config(run_dir, cfg.to_dict())
    return session


def _resume_target(cfg: TrainConfig, recipe: Recipe) -> tuple[Path, Path]:
    if cfg.resume == "auto":
        run_dir = Path(cfg.out) if cfg.out else runs.latest_run(recipe.name)
        path = run_dir / "last.pt"
        if not path.is_file():
            raise DataError(
                f"{path}: no checkpoint to resume from (--resume auto never starts "
                "afresh; drop --resume to start a new run)"
            )
        return path, run_dir
    path = Path(cfg.resume)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint to resume from not found")
    return path, Path(cfg.out) if cfg.out else path.parent


def _fresh_run_dir(cfg: TrainConfig, recipe: Recipe, dist) -> Path:
    if cfg.out:
        run_dir = Path(cfg.out)
        if (run_dir / "last.pt").exists():
            raise DataError(
                f"{run_dir}: already holds a run (last.pt); continue it with "
                "--resume auto or choose another --out"
            )
        return run_dir
    return distributed.broadcast_object(runs.new_run_dir(recipe.name) if dist.is_main else None)


def _load_resume(path: Path, cfg: TrainConfig, recipe: Recipe, log) -> dict:
    payload = checkpoint.load(path)
    if "optimizer" not in payload or "progress" not in payload:
        raise DataError(
            f"{path}: holds weights only (best.pt?); resume from last.pt, or "
            "start a new run with --weights"
        )
    if payload.get("recipe") != recipe.name:
        raise ConfigError(f"{path}: is a {payload.get('recipe')} run, not {recipe.name}")
    previous = config_from_dict(payload["config"])
    changes = [
        line for line in config_diff(previous, cfg) if line.split(":", 1)[0] not in RESUME_NEUTRAL
    ]
    if changes:
        log.warn("resuming with a different config:\n  " + "\n  ".join(changes))
    return payload
