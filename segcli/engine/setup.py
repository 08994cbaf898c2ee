"""What a training run is built from, built and checked once before its run folder exists: the
model (starting weights, frozen modules, placed, wrapped for DDP / torch.compile), the
optimizer, the loader, the scheduler and the gradient scaler (`Training`); and the state it
starts from (`TrainState`, restored from last.pt on resume)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from segcli.config import TrainConfig
from segcli.data.loader import train_loader
from segcli.engine import checkpoint
from segcli.engine.device import Precision, select_precision
from segcli.engine.distributed import DistInfo
from segcli.engine.freeze import freeze_backbone
from segcli.engine.optim import build_optimizer, build_scheduler, linear_scaled_lr
from segcli.engine.resume import ResumePoint
from segcli.engine.weights import WeightsReport, start_from_weights
from segcli.errors import ConfigError, DataError
from segcli.nn.batch import check_min_batch
from segcli.recipe import Recipe

if TYPE_CHECKING:  # the task modules load with the recipe's task, after distributed set-up
    from segcli.tasks import Task, TaskData


@dataclass
class TrainState:
    """Where training stands; saved in last.pt under the key "progress"."""

    iteration: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed (this rank)
    best_score: float = -math.inf
    best_iteration: int = -1
    skipped_nonfinite: int = 0


@dataclass(eq=False)
class Training:
    """Everything the loop runs on, built once by `build`."""

    cfg: TrainConfig
    recipe: Recipe
    task: Task  # tasks.for_recipe
    data: TaskData
    model: torch.nn.Module  # placed on `device`; DDP- and/or compile-wrapped as asked
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    precision: Precision
    device: torch.device
    dist: DistInfo
    loader: torch.utils.data.DataLoader
    total: int  # optimizer steps of the whole run
    weights: WeightsReport | None = None  # what --weights / --pretrained loaded


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_split_sizes(cfg, data, dist, log) -> None:
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


def build(cfg, recipe, task, data, log, device, dist: DistInfo) -> Training:
    """The model, optimizer, loader and schedule of a run on `data`, checked."""
    model = recipe.build_model(len(data.class_names), pretrained=cfg.pretrained, **cfg.model)
    shared = dist.world_size if cfg.sync_bn and dist.enabled else 1  # SyncBN spans processes
    check_min_batch(model, recipe.name, cfg.batch_size * shared)
    weights = start_from_weights(model, cfg, recipe, log)
    _freeze(model, cfg.freeze, log)
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
    return Training(
        cfg, recipe, task, data, model, optimizer, scheduler, scaler, precision, device, dist,
        loader, total, weights,
    )  # fmt: skip


def start_state(training: Training, resume: ResumePoint | None) -> TrainState:
    """A new run's state, or the resumed run's with its weights, optimizer, schedule, scaler
    and random generators restored."""
    state = TrainState()
    if resume is None:
        return state
    payload = resume.payload
    checkpoint.unwrap(training.model).load_state_dict(payload["model"])
    training.optimizer.load_state_dict(payload["optimizer"])
    training.scheduler.load_state_dict(payload["scheduler"])
    if payload.get("scaler"):
        training.scaler.load_state_dict(payload["scaler"])
    for key, value in payload["progress"].items():
        setattr(state, key, value)
    checkpoint.set_rng_state(payload["rng"])
    if state.iteration >= training.total:
        raise ConfigError(
            f"{resume.path}: the run already finished its {state.iteration} iterations; "
            "pass a larger --iters (or --epochs) to extend it"
        )
    return state


def model_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


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
