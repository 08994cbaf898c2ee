"""Every registered recipe trains: one optimizer step of segcli.engine.trainer.fit with its quick
profile and tiny model options, on the built-in data."""

import io
import json
import math

import pytest
import torch
from rich.console import Console

from segcli.config import resolve_config
from segcli.engine import checkpoint
from segcli.engine.trainer import fit
from segcli.recipe import list_recipes

from helpers import TINY_OPTIONS, settings

RECIPES = list_recipes()
SHAPES_CLASSES = 4  # background, square, circle, triangle


def test_every_recipe_has_tiny_options():
    assert {r.name for r in RECIPES} == set(TINY_OPTIONS)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_one_step_of_fit(recipe, in_tmp):
    size = 32 if recipe.task == "semantic" else 64
    flags = {"iters": 1, "batch_size": 2, "workers": 0, "img_size": size, "out": "run"}
    tiny = {"shapes_train": 4, "shapes_val": 2, "log_every": 1, "tensorboard": False}
    cfg = resolve_config(recipe, flags, settings({**tiny, **TINY_OPTIONS[recipe.name]}))
    assert cfg.iters == 1 and TINY_OPTIONS[recipe.name].items() <= dict(cfg.model).items()

    run = fit(cfg, recipe, console=Console(file=io.StringIO()))

    saved = checkpoint.load(run / "last.pt")
    with torch.device("meta"):
        model = recipe.build_model(SHAPES_CLASSES, **cfg.model)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in saved["model"].items()} == shapes
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["iter"] for r in train] == [1] and math.isfinite(train[0]["loss"])
