"""Every recipe's settings resolve against the config schema: each key a TrainConfig field or a
model option, each value valid by its Rule, alone and in the combinations a run makes."""

import dataclasses

import pytest

from segcli.config import TrainConfig, merge_layers, resolve_config
from segcli.recipe import list_recipes

LAYERS = ("defaults", "quick", "from_weights", "pretrained_options")
FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"recipe", "model"}
WEIGHTS = {"weights": "stage1.pt"}  # an earlier stage's checkpoint: the from_weights layer
PRETRAINED = {"pretrained": True}


@pytest.mark.parametrize("recipe", list_recipes(), ids=lambda r: r.name)
def test_recipe_settings_resolve_against_the_schema(recipe):
    for layer in LAYERS:
        values = getattr(recipe, layer)
        unknown = set(values) - FIELDS - set(recipe.options)
        assert not unknown, f"{recipe.name}.{layer}: neither a setting nor a model option"
        # Each layer alone, on the built-in defaults: coerced and checked by every Rule.
        assert_applied(merge_layers(recipe, [(layer, values)]), values)
    # The layer on top for each start (config.config_layers' order), with quick=False and True.
    on_top = [
        (False, {}, recipe.defaults),
        (True, {}, recipe.quick),
        (False, WEIGHTS, recipe.from_weights),
        (True, WEIGHTS, recipe.quick),
        (False, PRETRAINED, recipe.pretrained_options),
        (True, {**WEIGHTS, **PRETRAINED}, recipe.pretrained_options),
    ]
    for quick, start, top in on_top:
        cfg = resolve_config(recipe, start, quick=quick)
        assert cfg.recipe == recipe.name and set(cfg.model) == set(recipe.options)
        assert_applied(cfg, top)


def assert_applied(cfg: TrainConfig, values) -> None:
    """Each of `values` is `cfg`'s setting or model option (lists saved as tuples)."""
    resolved = {**cfg.to_dict(), **cfg.model}
    for key, value in values.items():
        assert resolved[key] == (tuple(value) if isinstance(value, list) else value), key
