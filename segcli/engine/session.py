"""A run folder and what is written into it: config, checkpoints, plots, samples, summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segcli import io, report, viz
from segcli.config import TrainConfig
from segcli.engine import checkpoint, distributed, runs
from segcli.engine.resume import ResumePoint
from segcli.errors import DataError
from segcli.recipe import Recipe


@dataclass
class RunSession:
    run_dir: Path
    cfg: TrainConfig
    recipe: Recipe
    class_names: tuple[str, ...]
    is_main: bool
    log: object
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

    def finish(self, model, task, data, device, state, seconds: float, last_val) -> None:
        """Plots, sample overlays and the final summary (rank 0)."""
        if not self.is_main:
            return
        rows = runs.MetricsLog(self.run_dir / "metrics.jsonl").read()
        view = report.view(task.name)
        view.write_plots(rows, last_val, self.class_names, self.run_dir)
        panels = view.sample_panels(
            task, checkpoint.unwrap(model), data.val_source, self.class_names, device
        )
        for name, image in panels:
            viz.save_jpeg(self.run_dir / "samples" / f"{name}.jpg", image)
        rows = [("run folder", str(self.run_dir)), ("iterations", f"{state.iteration}")]
        rows.append(("time", f"{seconds:.1f} s"))
        if last_val:
            rows += [
                (f"final {task.score}", f"{last_val[task.score]:.4f}"),
                (
                    f"best {task.score}",
                    f"{state.best_score:.4f} (iteration {state.best_iteration})",
                ),
                ("checkpoints", f"{self.run_dir / 'best.pt'}, {self.run_dir / 'last.pt'}"),
                ("samples", f"{self.run_dir / 'samples'}"),
            ]
        else:
            rows.append(("checkpoint", f"{self.run_dir / 'last.pt'} (no val split, no best.pt)"))
        rows.append(("plots", ", ".join(str(self.run_dir / name) for name in task.plots)))
        self.log.summary(rows)


def open_session(
    cfg: TrainConfig,
    recipe: Recipe,
    class_names,
    dist,
    log,
    model_bytes: int = 0,
    category_ids: tuple[int, ...] | None = None,
    resume: ResumePoint | None = None,
) -> RunSession:
    """The run folder (the resumed run's, or a new one), checked to be writable, with the
    config written and, on resume, metrics.jsonl cut back to the checkpoint's iteration. Called
    once everything else is validated: a refused start leaves no folder behind."""
    run_dir = resume.run_dir if resume else _fresh_run_dir(cfg, recipe, dist)
    session = RunSession(
        run_dir,
        cfg,
        recipe,
        tuple(class_names),
        dist.is_main,
        log,
        category_ids,
    )
    if dist.is_main:
        # last.pt + best.pt + the temporary copy while writing: weights x ~4, optimizer included
        problem = io.check_writable(run_dir, reserve_bytes=4 * model_bytes)
        if problem:
            raise DataError(problem)
        if resume is not None:
            iteration = resume.payload["progress"]["iteration"]
            runs.MetricsLog(run_dir / "metrics.jsonl").truncate_after(iteration)
        runs.write_config(run_dir, cfg.to_dict())
    return session


def refuse_occupied_out(cfg: TrainConfig) -> None:
    """A new run never writes over another: --out must not hold a last.pt."""
    if cfg.out and (Path(cfg.out) / "last.pt").exists():
        raise DataError(
            f"{cfg.out}: already holds a run (last.pt); continue it with --resume auto or "
            "choose another --out"
        )


def _fresh_run_dir(cfg: TrainConfig, recipe: Recipe, dist) -> Path:
    if cfg.out:
        refuse_occupied_out(cfg)
        return Path(cfg.out)
    return distributed.broadcast_object(runs.new_run_dir(recipe.name) if dist.is_main else None)
