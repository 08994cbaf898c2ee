"""The one training loop: fit() -> Trainer.run() -> train_one_epoch() and validate(), for every
recipe.

Runs unchanged on CPU, one GPU or many (torchrun + DistributedDataParallel). Iterations count
optimizer steps; a micro-batch counter inside the epoch makes resume exact.
"""

from __future__ import annotations

import gc
import os
import shlex
import time
from pathlib import Path

import torch
from rich.console import Console

from segcli import report, tasks
from segcli.config import TrainConfig
from segcli.engine import checkpoint, distributed, setup
from segcli.engine import train_log as reporting
from segcli.engine.device import select_device
from segcli.engine.events import Events
from segcli.engine.freeze import train_mode
from segcli.engine.resume import ResumePoint, check_changes, check_classes, locate
from segcli.engine.run_dirs import refuse_occupied_out
from segcli.engine.run_folder import RunFolder
from segcli.engine.setup import Training, TrainState, check_split_sizes, seed_everything
from segcli.engine.stopping import StopSignals, Terminated
from segcli.errors import SegcliError, first_line
from segcli.recipe import Recipe
from segcli.tasks.evaluation import run_evaluation


class Interrupted(SegcliError):
    """Ctrl-C: last.pt was written; the message says how to resume."""

    exit_code = 130


class NonFiniteLoss(SegcliError):
    """The loss became NaN or infinite; last.pt holds the last good state."""


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
    """Everything is built and checked before RunFolder.open makes or touches a run folder."""
    if resume is None:
        refuse_occupied_out(cfg)  # before any weights are downloaded or data read
    task = tasks.for_recipe(recipe)
    seed_everything(cfg.seed + dist.rank)
    data = task.build_data(cfg)
    check_split_sizes(cfg, data, dist, log)
    if resume is not None:
        check_classes(resume, data.class_names)
    training = setup.build(cfg, recipe, task, data, log, device, dist)
    state = setup.start_state(training, resume)
    folder = RunFolder.open(
        cfg, recipe, data.class_names, dist, log, setup.model_bytes(training.model),
        data.category_ids, resume,
    )  # fmt: skip
    if dist.is_main:
        log.write_log_to(folder.log_path)
    if resume is not None:
        log.info(f"resumed from {resume.path} at iteration {state.iteration}/{training.total}")
    if training.weights is not None:
        folder.write_weights_source(training.weights)
    log.start(
        cfg, dist, device, training.precision, training.total, len(data.train), folder.run_dir
    )
    Trainer(training, folder, log).run(state)
    return folder.run_dir


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


class Trainer(Training):
    """The loop over a Training, whose parts it reads as its own fields (`self.model`, ...);
    everything it writes goes through `folder`."""

    def __init__(self, training: Training, folder: RunFolder, log: reporting.Reporter):
        super().__init__(**vars(training))
        self.folder, self.log = folder, log
        self.last_val: dict | None = None
        self.stepping = False  # inside an optimizer step
        self.stop = StopSignals(self.log.warn)
        self.events = Events(folder.run_dir, self.cfg.tensorboard and self.dist.is_main, log)

    def run(self, state: TrainState) -> None:
        try:
            self._run(state)
        finally:
            self.events.close()

    def _run(self, state: TrainState) -> None:
        started = time.perf_counter()
        with self.log.progress(self.total, state.iteration) as bar:
            try:
                # Left before the handlers below run: a SIGTERM (torchrun stopping every rank
                # once one failed) then cannot cut short the saving and the one-line error.
                with self.stop.installed():
                    self._train(state, bar)
            except Interrupted:
                raise
            except Terminated:
                why = " (torchrun stops every rank when one fails)" if self.dist.enabled else ""
                raise SegcliError(f"stopped by SIGTERM{why}; {self._kept()}") from None
            except SegcliError as exc:  # a data error mid-epoch, a non-finite loss
                raise type(exc)(f"{exc}; {self._save_after_error(state)}") from None
            except RuntimeError as exc:
                if self.dist.enabled:  # gloo/NCCL: a peer died or stopped answering
                    reason = f"a peer rank stopped ({first_line(exc)})"
                    raise SegcliError(f"{reason}; {self._save_after_error(state)}") from None
                self.log.warn(self._save_after_error(state))
                raise
            except Exception:  # a bug or a library failure: its traceback, but no work lost
                self.log.warn(self._save_after_error(state))
                raise
            self.save_last(state)
            self.folder.finish(
                self.model,
                self.task,
                self.data,
                self.device,
                state,
                time.perf_counter() - started,
                self.last_val,
            )

    def _train(self, state: TrainState, bar) -> None:
        """Epochs until `total` iterations, validating as asked and at the end."""
        while state.iteration < self.total:
            skip = state.batch_in_epoch * self.cfg.batch_size
            self.loader.sampler.start_at(state.epoch, skip)
            if self.train_one_epoch(state, bar):
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                if self.cfg.val_every == 0 and state.iteration < self.total:
                    self.validate(state)
        if self.last_val is None or self.last_val["iter"] != state.iteration:
            self.validate(state)

    def train_one_epoch(self, state: TrainState, bar) -> bool:
        """Consume the rest of the epoch; False if training ended (total or Ctrl-C) inside it."""
        train_mode(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        accumulate, losses_sum, poisoned = self.cfg.accumulate, {}, False
        for batch in self.loader:
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

    def _after_step(self, state: TrainState, losses: dict, bar) -> None:
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

    def _finite(self, loss: torch.Tensor, state: TrainState) -> bool:
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

    def validate(self, state: TrainState) -> None:
        """Score the val split (none: nothing to do), keep the best weights, log the result
        (one line, the per-class table for the last step)."""
        if not len(self.data.val):
            return
        model = checkpoint.unwrap(self.model)
        distributed.broadcast_buffers(model)
        result, _ = run_evaluation(
            self.task, model, self.data, self.cfg, self.device, self.precision, self.dist
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
                self.folder.save_best(self.model, state, result)
        train_mode(self.model)

    def _record(self, kind: str, state: TrainState, values: dict) -> None:
        """One metrics.jsonl line and the TensorBoard scalars (rank 0)."""
        self.folder.record({"kind": kind, "iter": state.iteration, "epoch": state.epoch, **values})
        self.events.scalars(kind, values, state.iteration)

    def _sample_images(self, state: TrainState) -> None:
        if self.events.enabled:
            model, names = checkpoint.unwrap(self.model), self.data.class_names
            view = report.view(self.task.name)
            panels = view.sample_panels(self.task, model, self.data.val_source, names, self.device)
            self.events.images("samples", panels, state.iteration)

    def save_last(self, state: TrainState) -> None:
        self.folder.save_last(self, state)

    def _interrupt(self, state: TrainState) -> None:
        self.save_last(state)
        raise Interrupted(
            f"interrupted at iteration {state.iteration}; {self.folder.run_dir / 'last.pt'} "
            f"written; resume with: {self._resume_command()}"
        )

    def _save_after_error(self, state: TrainState) -> str:
        """Write last.pt at the last finished optimizer step, if there is one and the error
        did not strike inside it; say what the run folder now holds."""
        if self.stepping or state.iteration == 0 or self.folder.saved_iteration == state.iteration:
            return self._kept()
        state.batch_in_epoch -= state.batch_in_epoch % self.cfg.accumulate  # a step's start
        try:
            self.save_last(state)
        except SegcliError as exc:
            return f"{exc}; {self._kept()}"
        return (
            f"{self.folder.run_dir / 'last.pt'} written at iteration {state.iteration}; "
            f"resume with: {self._resume_command()}"
        )

    def _kept(self) -> str:
        path = self.folder.run_dir / "last.pt"
        if self.folder.saved_iteration is None:
            return "no last.pt was written yet"
        return (
            f"{path} (iteration {self.folder.saved_iteration}) is intact; resume with: "
            f"{self._resume_command()}"
        )

    def _resume_command(self) -> str:
        """The command that continues this run (its own settings come from last.pt)."""
        args = ["train", self.recipe.name, "--out", str(self.folder.run_dir), "--resume", "auto"]
        if self.dist.enabled:
            return f"torchrun --nproc_per_node {self.dist.world_size} -m segcli {shlex.join(args)}"
        return f"segcli {shlex.join(args)}"
