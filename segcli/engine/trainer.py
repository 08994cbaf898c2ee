"""The one training loop: fit() -> train_one_epoch() and evaluate(), for every recipe.

Runs unchanged on CPU, one GPU or many (torchrun + DistributedDataParallel). Iterations count
optimizer steps; a micro-batch counter inside the epoch makes resume exact.
"""

from __future__ import annotations

import gc
import math
import os
import random
import re
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from segcli import io, report, tasks
from segcli.config import TrainConfig
from segcli.data.loader import train_loader
from segcli.engine import checkpoint, distributed
from segcli.engine import train_log as reporting
from segcli.engine.device import Precision, select_device, select_precision
from segcli.engine.events import Events
from segcli.engine.freeze import freeze_backbone, train_mode
from segcli.engine.optim import build_optimizer, build_scheduler, linear_scaled_lr
from segcli.engine.resume import ResumePoint, check_changes, check_classes, locate
from segcli.engine.runs import MetricsLog
from segcli.engine.session import RunSession, open_session, refuse_occupied_out
from segcli.engine.stopping import StopSignals, Terminated, worker_stopped_by_sigterm
from segcli.engine.weights import start_from_weights
from segcli.errors import ConfigError, DataError, SegcliError
from segcli.nn.batch import check_min_batch
from segcli.recipe import Recipe
from segcli.tasks.evaluation import run_evaluation

if TYPE_CHECKING:  # the task modules load with the recipe's task, after distributed set-up
    from segcli.tasks import Task, TaskData


class Interrupted(SegcliError):
    """Ctrl-C: last.pt was written; the message says how to resume."""

    exit_code = 130


class NonFiniteLoss(SegcliError):
    """The loss became NaN or infinite; last.pt holds the last good state."""


@dataclass
class Progress:
    iteration: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed (this rank)
    best_score: float = -math.inf
    best_iteration: int = -1
    skipped_nonfinite: int = 0


def _first_line(exc: BaseException) -> str:
    """The gist of a library error: first sentence, without a `[file.cc:123]` source prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". ")[0][:200]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(
    cfg: TrainConfig,
    recipe: Recipe,
    console: Console | None = None,
    resume: ResumePoint | None = None,
    log: reporting.Reporter | None = None,
) -> Path:
    """Train `recipe` as `cfg` says (continuing `resume`, which `cfg.resume` names and
    segcli.engine.resume resolves when not given); returns the run folder. The global state
    it sets (random generators, denormal flushing, log handlers) is restored on return."""
    console = console or Console()
    device = select_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
    rng = checkpoint.rng_state()
    # Denormal floats (weights decaying towards 0) make CPU kernels many times slower.
    torch.set_flush_denormal(True)
    dist = distributed.init_distributed(use_cuda=device.type == "cuda")
    log = log or reporting.Reporter(console, enabled=dist.is_main)
    try:
        with log.attached():
            if cfg.resume and resume is None:
                resume = locate(cfg, recipe, log)
                check_changes(resume, cfg, log)
            return _fit(cfg, recipe, log, device, dist, resume)
    except SegcliError as exc:  # shown as one line: drop the frames, which hold the model
        exc.__context__ = None
        raise exc.with_traceback(None) from None
    finally:
        # The DDP model must be freed before its process group is destroyed, or its threads
        # abort the process at exit; cyclic garbage (matplotlib's first import leaves some)
        # can still hold frames of _fit, hence the collection.
        gc.collect()
        distributed.shutdown()
        torch.set_flush_denormal(False)  # torch's default
        checkpoint.set_rng_state(rng)


def _fit(cfg, recipe, log, device, dist, resume) -> Path:
    """Everything is built and checked before open_session makes or touches a run folder."""
    if resume is None:
        refuse_occupied_out(cfg)  # before any weights are downloaded or data read
    task = tasks.for_recipe(recipe)
    seed_everything(cfg.seed + dist.rank)
    data = task.build_data(cfg)
    _check_split_sizes(cfg, data, dist, log)
    if resume is not None:
        check_classes(resume, data.class_names)
    model = recipe.build_model(len(data.class_names), pretrained=cfg.pretrained, **cfg.model)
    shared = dist.world_size if cfg.sync_bn and dist.enabled else 1  # SyncBN spans processes
    check_min_batch(model, recipe.name, cfg.batch_size * shared)
    weights = start_from_weights(model, cfg, recipe, log)
    _freeze(model, cfg.freeze, log)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    model = _prepare_model(model, cfg, device, dist)
    optimizer = build_optimizer(linear_scaled_lr(cfg, dist.world_size, log), model)
    loader = train_loader(
        data.train, cfg.batch_size, cfg.workers, cfg.seed, dist.rank, dist.world_size,
        data.collate_fn,
    )  # fmt: skip
    steps_per_epoch = len(loader.sampler) // cfg.batch_size // cfg.accumulate
    total = cfg.iters or cfg.epochs * steps_per_epoch
    scheduler = build_scheduler(cfg, optimizer, total)
    if cfg.warmup_iters >= total:
        log.warn(
            f"warmup_iters {cfg.warmup_iters} >= {total} iterations: the learning rate never "
            f"reaches lr {cfg.lr:g}; a short fine-tune wants e.g. --set warmup_iters={total // 10}"
        )
    precision = select_precision(device, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=precision.needs_scaler)
    state, saved_iteration = Progress(), None
    if resume is not None:
        _restore(resume.payload, model, optimizer, scheduler, scaler, state)
        _check_more_to_do(resume, state, total)
        saved_iteration = state.iteration
    session = open_session(
        cfg, recipe, data.class_names, dist, log, model_bytes, data.category_ids, resume
    )
    if dist.is_main:
        log.write_log_to(session.run_dir / "train.log")
    if resume is not None:
        log.info(f"resumed from {resume.path} at iteration {state.iteration}/{total}")
    if weights is not None and dist.is_main:
        io.write_json(session.run_dir / "weights.json", weights.to_json())
    trainer = Trainer(
        cfg, recipe, task, data, model, optimizer, scheduler, scaler, precision, device, dist,
        session, log, total, saved_iteration,
    )  # fmt: skip
    log.start(cfg, dist, device, precision, total, len(data.train), session.run_dir)
    trainer.run(loader, state)
    return session.run_dir


def _check_more_to_do(resume: ResumePoint, state: Progress, total: int) -> None:
    if state.iteration >= total:
        raise ConfigError(
            f"{resume.path}: the run already finished its {state.iteration} iterations; "
            "pass a larger --iters (or --epochs) to extend it"
        )


def _check_split_sizes(cfg, data, dist, log) -> None:
    """Refuse, before any folder is made, a train split that cannot fill a batch; say what an
    empty val split means."""
    batch = cfg.batch_size * cfg.accumulate * dist.world_size
    if len(data.train) < batch:
        raise DataError(
            f"{cfg.data}: {len(data.train)} training images are fewer than one "
            f"batch of {batch}; lower --batch-size"
        )
    if len(data.val) == 0:
        log.warn(
            f"{cfg.data}: the val split is empty: training without validation, so no best.pt "
            "(last.pt holds the final weights)"
        )


def _freeze(model, spec: str, log) -> None:
    frozen = freeze_backbone(model, spec)
    if frozen:
        params = list(model.parameters())
        training = sum(p.numel() for p in params if p.requires_grad)
        log.info(
            f"--freeze {spec}: {len(frozen)} backbone modules frozen; {training:,} of "
            f"{sum(p.numel() for p in params):,} parameters train"
        )


def _prepare_model(model, cfg, device, dist):
    if cfg.sync_bn and dist.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = place_model(model, cfg, device)
    if dist.enabled:
        model = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=False,
        )
    if cfg.compile:
        model = torch.compile(model)
    return model


def place_model(model: torch.nn.Module, cfg, device) -> torch.nn.Module:
    """`model` on `device`, in channels_last memory format when `cfg.channels_last` (the
    training tasks then feed it channels_last images)."""
    model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def optimizer_step(model, optimizer, scaler, grad_clip: float) -> None:
    """Apply the accumulated (scaled) gradients: unscale and clip their norm to `grad_clip`
    when it is above 0, step through the GradScaler (which skips a step whose fp16 gradients
    overflowed) and update its scale, then drop the gradients."""
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def _restore(payload, model, optimizer, scheduler, scaler, state: Progress) -> None:
    checkpoint.unwrap(model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    for key, value in payload["progress"].items():
        setattr(state, key, value)
    checkpoint.set_rng_state(payload["rng"])


@dataclass
class Trainer:
    """Holds what the loop needs so train_one_epoch stays a short, readable function."""

    cfg: TrainConfig
    recipe: Recipe
    task: Task  # tasks.for_recipe
    data: TaskData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    precision: Precision
    device: torch.device
    dist: distributed.DistInfo
    session: RunSession
    log: reporting.Reporter
    total: int
    saved_iteration: int | None = None  # the iteration last.pt holds, once written
    last_val: dict | None = None
    stepping: bool = False  # inside an optimizer step

    def __post_init__(self):
        self.metrics_log = MetricsLog(self.session.run_dir / "metrics.jsonl")
        self.stop = StopSignals(self.log.warn)
        main = self.dist.is_main
        self.events = Events(self.session.run_dir, self.cfg.tensorboard and main, self.log)

    def run(self, loader, state: Progress) -> None:
        try:
            self._run(loader, state)
        finally:
            self.events.close()

    def _run(self, loader, state: Progress) -> None:
        started = time.perf_counter()
        with self.stop.installed(), self.log.progress(self.total, state.iteration) as bar:
            try:
                while state.iteration < self.total:
                    loader.sampler.start_at(state.epoch, state.batch_in_epoch * self.cfg.batch_size)
                    finished_epoch = self.train_one_epoch(loader, state, bar)
                    if finished_epoch:
                        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                        if self.cfg.val_every == 0 and state.iteration < self.total:
                            self.validate(state)
                if self.last_val is None or self.last_val["iter"] != state.iteration:
                    self.validate(state)
            except Interrupted:
                raise
            except Terminated:
                why = " (torchrun stops every rank when one fails)" if self.dist.enabled else ""
                raise SegcliError(f"stopped by SIGTERM{why}; {self._kept()}") from None
            except SegcliError as exc:  # a data error mid-epoch, a non-finite loss
                raise type(exc)(f"{exc}; {self._save_after_error(state)}") from None
            except RuntimeError as exc:
                if worker_stopped_by_sigterm(exc):  # SIGTERM to the whole process group
                    raise SegcliError(f"stopped by SIGTERM; {self._kept()}") from None
                if self.dist.enabled:  # gloo/NCCL: a peer died or stopped answering
                    reason = f"a peer rank stopped ({_first_line(exc)})"
                    raise SegcliError(f"{reason}; {self._save_after_error(state)}") from None
                self.log.warn(self._save_after_error(state))
                raise
            except Exception:  # a bug or a library failure: its traceback, but no work lost
                self.log.warn(self._save_after_error(state))
                raise
        self.save_last(state)
        self.session.finish(
            self.model,
            self.task,
            self.data,
            self.device,
            state,
            time.perf_counter() - started,
            self.last_val,
        )

    def train_one_epoch(self, loader, state: Progress, bar) -> bool:
        """Consume the rest of the epoch; False if training ended (total or Ctrl-C) inside it."""
        train_mode(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        accumulate, losses_sum, poisoned = self.cfg.accumulate, {}, False
        for batch in loader:
            losses = self.task.losses(self.model, batch, self.device, self.precision, self.cfg)
            loss = sum(losses.values())
            state.batch_in_epoch += 1
            if self._finite(loss, state):
                self.scaler.scale(loss / accumulate).backward()
                for name, value in losses.items():
                    losses_sum[name] = (
                        losses_sum.get(name, 0.0) + float(value.detach()) / accumulate
                    )
            else:
                poisoned = True
            if state.batch_in_epoch % accumulate:
                continue
            self._step(skip=poisoned)
            state.iteration += 1
            self._after_step(state, losses_sum, bar)
            losses_sum, poisoned = {}, False
            if self.stop.requested:
                self._interrupt(state)
            if state.iteration >= self.total:
                return False
        return True

    def _step(self, skip: bool = False) -> None:
        """One optimizer step (none for a step poisoned by a non-finite loss); lr advances."""
        if skip:
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            return
        self.stepping = True  # an error inside leaves the weights half-updated: not saved
        optimizer_step(self.model, self.optimizer, self.scaler, self.cfg.grad_clip)
        self.scheduler.step()
        self.stepping = False

    def _after_step(self, state: Progress, losses: dict, bar) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        total_loss = sum(losses.values())
        bar.advance(status=f"loss {total_loss:.4f}  lr {lr:.2e}")
        if state.iteration % self.cfg.log_every == 0 or state.iteration == self.total:
            if self.dist.is_main:
                self._record("train", state, {"loss": total_loss, "lr": lr, **losses})
        if self.cfg.val_every and state.iteration % self.cfg.val_every == 0:
            self.validate(state)
        if self.cfg.save_every and state.iteration % self.cfg.save_every == 0:
            self.save_last(state)

    def _finite(self, loss: torch.Tensor, state: Progress) -> bool:
        """Whether every rank's loss is finite (ranks agree, so DDP never waits on a skipper)."""
        ok = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
        if self.dist.enabled:
            ok = distributed.all_reduce_sum(ok) == self.dist.world_size
        if bool(ok):
            return True
        if not self.cfg.skip_nonfinite:
            raise NonFiniteLoss(
                f"non-finite loss at iteration {state.iteration + 1} (lower --lr, or "
                "--set skip_nonfinite=true to skip such steps)"
            )
        state.skipped_nonfinite += 1
        self.log.warn(
            f"non-finite loss at iteration {state.iteration + 1}: step skipped "
            f"({state.skipped_nonfinite} so far)"
        )
        return False

    def validate(self, state: Progress) -> None:
        """Score the val split (none: nothing to do), keep the best weights, log the result
        (one line, the per-class table for the last step)."""
        if not len(self.data.val):
            return
        distributed.broadcast_buffers(checkpoint.unwrap(self.model))
        result, _ = run_evaluation(
            self.task, self.model, self.data, self.cfg, self.device, self.precision, self.dist
        )
        score = result[self.task.score]
        improved = score > state.best_score
        if improved:
            state.best_score, state.best_iteration = score, state.iteration
        self.last_val = {"iter": state.iteration, **result}
        if self.dist.is_main:
            self._record("val", state, result)
            self._sample_images(state)
            final = state.iteration >= self.total
            self.log.validation(self.task, result, self.data.class_names, state.iteration, final)
            if improved:
                self.session.save_best(self.model, state, result)
        train_mode(self.model)

    def _record(self, kind: str, state: Progress, values: dict) -> None:
        """One metrics.jsonl line and the TensorBoard scalars (rank 0)."""
        self.metrics_log.append(
            {"kind": kind, "iter": state.iteration, "epoch": state.epoch, **values}
        )
        self.events.scalars(kind, values, state.iteration)

    def _sample_images(self, state: Progress) -> None:
        if self.events.enabled:
            model, names = checkpoint.unwrap(self.model), self.data.class_names
            view = report.view(self.task.name)
            panels = view.sample_panels(self.task, model, self.data.val_source, names, self.device)
            self.events.images("samples", panels, state.iteration)

    def save_last(self, state: Progress) -> None:
        self.saved_iteration = state.iteration
        if not self.dist.is_main:
            return
        self.session.save_last(
            {
                "model": checkpoint.unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "progress": asdict(state),
                "rng": checkpoint.rng_state(),
            }
        )

    def _interrupt(self, state: Progress) -> None:
        self.save_last(state)
        raise Interrupted(
            f"interrupted at iteration {state.iteration}; {self.session.run_dir / 'last.pt'} "
            f"written; resume with: {self._resume_command()}"
        )

    def _save_after_error(self, state: Progress) -> str:
        """Write last.pt at the last finished optimizer step, if there is one and the error
        did not strike inside it; say what the run folder now holds."""
        if self.stepping or state.iteration == 0 or self.saved_iteration == state.iteration:
            return self._kept()
        state.batch_in_epoch -= state.batch_in_epoch % self.cfg.accumulate  # a step's start
        try:
            self.save_last(state)
        except SegcliError as exc:
            return f"{exc}; {self._kept()}"
        return (
            f"{self.session.run_dir / 'last.pt'} written at iteration {state.iteration}; "
            f"resume with: {self._resume_command()}"
        )

    def _kept(self) -> str:
        path = self.session.run_dir / "last.pt"
        if self.saved_iteration is None:
            return "no last.pt was written yet"
        return (
            f"{path} (iteration {self.saved_iteration}) is intact; resume with: "
            f"{self._resume_command()}"
        )

    def _resume_command(self) -> str:
        """The command that continues this run (its own settings come from last.pt)."""
        args = ["train", self.recipe.name, "--out", str(self.session.run_dir), "--resume", "auto"]
        if self.dist.enabled:
            return f"torchrun --nproc_per_node {self.dist.world_size} -m segcli {shlex.join(args)}"
        return f"segcli {shlex.join(args)}"
