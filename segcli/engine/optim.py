"""Optimizer and per-iteration learning-rate schedule from the config."""

from __future__ import annotations

import bisect

import torch
from torch import nn

from segcli.config import TrainConfig
from segcli.errors import ConfigError


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (Nesterov off, as in the papers), Adam or AdamW.

    Biases get `bias_lr_mult` times the learning rate and, like normalisation parameters, no
    weight decay (the Caffe recipes' decay_mult 0).
    """
    weights, biases, norms = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
                norms.append(param)
            elif name == "bias":
                biases.append(param)
            else:
                weights.append(param)
    groups = [
        {"params": weights, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"params": biases, "weight_decay": 0.0, "lr": cfg.lr * cfg.bias_lr_mult},
        {"params": norms, "weight_decay": 0.0, "lr": cfg.lr},
    ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ConfigError(f"setting 'optimizer': expected sgd, adam or adamw, got {cfg.optimizer!r}")


def lr_factor(cfg: TrainConfig, iteration: int, total: int) -> float:
    """Multiplier of the base learning rate at optimizer step `iteration` (0-based)."""
    if cfg.schedule == "poly":  # (1 - iter/max_iter)^power, DeepLab v2 section 4.1
        factor = (1 - min(iteration, total) / max(total, 1)) ** cfg.poly_power
    elif cfg.schedule == "step":
        factor = cfg.lr_gamma ** bisect.bisect_right(list(cfg.lr_steps), iteration)
    elif cfg.schedule == "constant":
        factor = 1.0
    else:
        raise ConfigError(
            f"setting 'schedule': expected poly, step or constant, got {cfg.schedule!r}"
        )
    if iteration < cfg.warmup_iters:  # linear warm-up from warmup_factor
        alpha = iteration / cfg.warmup_iters
        factor *= cfg.warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total: int):
    lr_factor(cfg, 0, total)  # reject a bad schedule name before training starts
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(cfg, it, total))
