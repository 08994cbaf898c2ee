"""Config precedence and `--set` validation."""

import pytest

from segcli.config import TrainConfig, config_from_dict, resolve_config
from segcli.engine.resume import settings_diff
from segcli.errors import ConfigError
from segcli.recipe import Recipe, get_recipe


def dummy_recipe(**kw):
    return Recipe(
        name="dummy",
        task="semantic",
        paper="p",
        model="segcli.recipes.nets.unet:build_unet",  # never built here; options: base=64
        defaults={"lr": 0.1, "batch_size": 4},
        quick={"lr": 0.5, "img_size": 64, "base": 8},
        **kw,
    )


def test_precedence_defaults_recipe_quick_flags_sets():
    r = dummy_recipe()
    cfg = resolve_config(r)
    assert (cfg.lr, cfg.batch_size, cfg.img_size, cfg.model["base"]) == (0.5, 4, 64, 8)
    cfg = resolve_config(r, {"lr": 0.2, "batch_size": None}, ["lr=0.3", "base=16"])
    assert (cfg.lr, cfg.batch_size, cfg.model["base"]) == (0.3, 4, 16)


def test_quick_profile_only_on_builtin_data():
    cfg = resolve_config(dummy_recipe(), {"data": "/some/folder"})
    assert (cfg.lr, cfg.img_size, cfg.model["base"]) == (0.1, TrainConfig.img_size, 64)


def test_set_values_are_literals_with_type_checks():
    cfg = resolve_config(
        dummy_recipe(),
        {},
        ["scale_range=[0.5, 1.5]", "hflip=false", "optimizer=adamw", "iters=10", "lr=1"],
    )
    assert cfg.scale_range == (0.5, 1.5) and cfg.hflip is False
    assert cfg.optimizer == "adamw" and cfg.iters == 10 and cfg.lr == 1.0
    with pytest.raises(ConfigError, match="'batch_size': expected int"):
        resolve_config(dummy_recipe(), {}, ["batch_size=2.5"])


def test_unknown_set_key_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean batch_size"):
        resolve_config(dummy_recipe(), {}, ["bacth_size=2"])
    with pytest.raises(ConfigError, match="expected key=value"):
        resolve_config(dummy_recipe(), {}, ["lr"])


def test_unknown_recipe_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean fcn8s"):
        get_recipe("fcn-8")
    assert get_recipe("FCN8s").name == "fcn8s"


def test_round_trip_and_diff():
    cfg = resolve_config(dummy_recipe(), {}, ["lr_steps=(10, 20)"])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    changed = resolve_config(dummy_recipe(), {"lr": 0.01})
    assert settings_diff(cfg, changed) == [("lr", 0.5, 0.01), ("lr_steps", (10, 20), ())]
