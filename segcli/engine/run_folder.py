"""A run folder's one writer (RunFolder): config.yaml, last.pt, best.pt, metrics.jsonl,
weights.json, plots, samples, and train.log's path (segcli.engine.run_dirs says where it is)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from segcli import io, report, viz
from segcli.config import TrainConfig
from segcli.engine import checkpoint, distributed
from segcli.engine.run_dirs import new_run_dir, refuse_occupied_out
from segcli.errors import DataError
from segcli.recipe import Recipe

if TYPE_CHECKING:
    from segcli.engine.resume import ResumePoint
    from segcli.engine.setup import Training, TrainState


@dataclass
class RunFolder:
    """Everything a training run writes, written here and only by rank 0 (`is_main`); the
    other ranks keep the same bookkeeping (`saved_iteration`) for their messages."""

    run_dir: Path
    cfg: TrainConfig
    recipe: Recipe
    class_names: tuple[str, ...]
    is_main: bool
    log: object
    category_ids: tuple[int, ...] | None = None  # instance data: COCO ids of labels 1..K
    metrics: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl, in memory
    saved_iteration: int | None = None  # the iteration last.pt holds, once written

    @classmethod
    def open(
        cls,
        cfg: TrainConfig,
        recipe: Recipe,
        class_names,
        dist,
        log,
        model_bytes: int = 0,
        category_ids: tuple[int, ...] | None = None,
        resume: ResumePoint | None = None,
    ) -> RunFolder:
        """The run folder (the resumed run's, or a new one), checked to be writable, with the
        config written and metrics.jsonl holding the records up to the checkpoint's iteration
        (none for a new run). Called once everything else is validated: a refused start
        leaves no folder behind."""
        run_dir = resume.run_dir if resume else _fresh_run_dir(cfg, recipe, dist)
        folder = cls(run_dir, cfg, recipe, tuple(class_names), dist.is_main, log, category_ids)
        if resume is not None:
            folder.saved_iteration = resume.payload["progress"]["iteration"]
        if not dist.is_main:
            return folder
        # last.pt + best.pt + the temporary copy while writing: weights x ~4, optimizer included
        problem = io.check_writable(run_dir, reserve_bytes=4 * model_bytes)
        if problem:
            raise DataError(problem)
        if resume is not None:  # read once; the records past last.pt are rewritten
            kept = folder.saved_iteration
            folder.metrics = [
                r for r in _read_jsonl(folder.metrics_path) if r.get("iter", 0) <= kept
            ]
        if folder.metrics_path.exists():  # the file holds exactly the records in memory
            io.write_text(folder.metrics_path, "".join(_jsonl_line(r) for r in folder.metrics))
        io.write_text(
            run_dir / "config.yaml", yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False)
        )
        return folder

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "train.log"

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

    def record(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl line (`kind` train or val, keyed by `iter`)."""
        if self.is_main:
            self.metrics.append(record)
            io.append_line(self.metrics_path, io.json_text(record))

    def write_weights_source(self, weights) -> None:
        """weights.json: where the starting weights came from (--weights, --pretrained)."""
        if self.is_main:
            io.write_json(self.run_dir / "weights.json", weights.to_json())

    def save_last(self, training: Training, state: TrainState) -> None:
        """last.pt: everything an exact resume needs, and what eval needs (meta)."""
        self.saved_iteration = state.iteration
        if not self.is_main:
            return
        self._write(
            self.run_dir / "last.pt",
            {
                "model": checkpoint.unwrap(training.model).state_dict(),
                "optimizer": training.optimizer.state_dict(),
                "scheduler": training.scheduler.state_dict(),
                "scaler": training.scaler.state_dict() if training.scaler.is_enabled() else None,
                "progress": asdict(state),  # the key stays "progress": old last.pt files resume
                "rng": checkpoint.rng_state(),
                **self.meta(),
            },
        )

    def save_best(self, model, state: TrainState, result: dict) -> None:
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
        """Plots (from the records in memory), sample overlays and the final summary."""
        if not self.is_main:
            return
        view = report.view(task.name)
        view.write_plots(self.metrics, last_val, self.class_names, self.run_dir)
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


def _fresh_run_dir(cfg: TrainConfig, recipe: Recipe, dist) -> Path:
    if cfg.out:
        refuse_occupied_out(cfg)
        return Path(cfg.out)
    return distributed.broadcast_object(new_run_dir(recipe.name) if dist.is_main else None)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (none if it is missing), skipping a line torn by a
    crash."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _jsonl_line(record: dict[str, Any]) -> str:
    return io.json_text(record) + "\n"


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
