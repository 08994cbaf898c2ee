"""`segcli train` and `segcli.train()`: resolve the run's config, then fit."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from segcli.config import BUILTIN_DATA
from segcli.data.sources import dataset_root
from segcli.engine.resume import resolve_training
from segcli.engine.train_log import Reporter
from segcli.recipe import Recipe


def train(recipe: Recipe, flags: Mapping[str, Any], sets: Iterable[str], console: Console) -> Path:
    """Train as the flags and `--set` strings say; returns the run folder."""
    log = Reporter(console, enabled=int(os.environ.get("RANK", 0)) == 0)
    with log.attached():
        plan = resolve_training(recipe, flags, sets, log)
        if plan.cfg.data != BUILTIN_DATA:
            dataset_root(plan.cfg.data)
        from segcli.engine.trainer import (
            fit,  # torch: once the settings and the data path are checked
        )

        return fit(plan.cfg, recipe, console, plan.resume, log)


def show_config(
    recipe: Recipe, flags: Mapping[str, Any], sets: Iterable[str], console: Console
) -> None:
    """`--show-config`: every setting with its value and origin; nothing is trained."""
    from segcli.config import config_origins
    from segcli.engine.train_log import config_table

    with Reporter(console).attached() as log:
        plan = resolve_training(recipe, flags, sets, log)
    console.print(config_table(plan.cfg, config_origins(plan.layers)))
