"""Optimizer and per-iteration learning-rate schedule from the config."""

from __future__ import annotations

import bisect
import dataclasses

import torch
from torch import nn

from segcli.config import TrainConfig


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (Nesterov off, as in the papers), Adam or AdamW.

    Biases get `bias_lr_mult` times the learning rate and, like normalisation parameters, no
    weight decay (the Caffe recipes' decay_mult 0). Parameters of the submodules a model names
    in its `head_modules` attribute (e.g. DeepLab's final classifier) get `head_lr_mult` times
    the learning rate.
    """
    head = _head_parameters(model)
    found: dict[tuple[str, bool], list] = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
                kind = "norm"
            else:
                kind = "bias" if name == "bias" else "weight"
            found.setdefault((kind, id(param) in head), []).append(param)
    decay = {"weight": cfg.weight_decay, "bias": 0.0, "norm": 0.0}
    mult = {"weight": 1.0, "bias": cfg.bias_lr_mult, "norm": 1.0}
    groups = [
        {
            "params": found[kind, in_head],
            "weight_decay": decay[kind],
            "lr": cfg.lr * mult[kind] * (cfg.head_lr_mult if in_head else 1.0),
        }
        for kind in ("weight", "bias", "norm")  # a fixed order keeps old checkpoints resumable
        for in_head in (False, True)
        if (kind, in_head) in found
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer](groups, lr=cfg.lr)


def _head_parameters(model: nn.Module) -> set[int]:
    """Ids of the parameters of the submodules named in the model's `head_modules`."""
    from segcli.engine.checkpoint import unwrap

    plain = unwrap(model)
    names = getattr(plain, "head_modules", ())
    return {id(p) for name in names for p in plain.get_submodule(name).parameters()}


def linear_scaled_lr(cfg: TrainConfig, world_size: int = 1, log=None) -> TrainConfig:
    """`cfg` with `lr` scaled from `lr_batch_size` images to the images of one optimizer step
    (the linear scaling rule); unchanged when lr_batch_size is 0."""
    if not cfg.lr_batch_size:
        return cfg
    batch = cfg.batch_size * cfg.accumulate * world_size
    lr = cfg.lr * batch / cfg.lr_batch_size
    if log is not None:
        log.info(f"lr {cfg.lr:g} for {cfg.lr_batch_size} images per step -> {lr:g} for {batch}")
    return dataclasses.replace(cfg, lr=lr)


def lr_factor(cfg: TrainConfig, iteration: int, total: int) -> float:
    """Multiplier of the base learning rate at optimizer step `iteration` (0-based)."""
    if cfg.schedule == "poly":  # (1 - iter/max_iter)^power, DeepLab v2 section 4.1
        factor = (1 - min(iteration, total) / max(total, 1)) ** cfg.poly_power
    elif cfg.schedule == "step":
        factor = cfg.lr_gamma ** bisect.bisect_right(list(cfg.lr_steps), iteration)
    else:  # constant (TrainConfig's Rule admits no other schedule)
        factor = 1.0
    if iteration < cfg.warmup_iters:  # linear warm-up from warmup_factor
        alpha = iteration / cfg.warmup_iters
        factor *= cfg.warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(cfg, it, total))
