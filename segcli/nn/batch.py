"""The smallest batch a model can train on, as its modules declare it."""

from __future__ import annotations

from torch import nn

from segcli.errors import ConfigError


def check_min_batch(model: nn.Module, name: str, batch: int) -> None:
    """Refuse a training batch (per BatchNorm group) smaller than a module's
    `min_batch_size` (e.g. DeepLab v3's image pooling, whose batch norm sees one value per
    channel per image), with the module's `min_batch_reason`."""
    for module in model.modules():
        if batch < (need := getattr(module, "min_batch_size", 1)):
            why = getattr(module, "min_batch_reason", "its batch norm normalises over the batch")
            raise ConfigError(f"{name} needs --batch-size >= {need} per process: {why}")
