"""FCN's two ways to train the skip nets: staged from the coarser net's checkpoint (section
4.2's learning rate / 100) and at once from ImageNet (the reference's fixed skip scaling)."""

import pytest
import torch
import yaml

from segcli.config import resolve_config
from segcli.recipe import get_recipe

from helpers import TINY_FCN, TINY_SHAPES

TINY = {"width": 0.125, "fc_channels": 32}


def shown(output: str) -> dict[str, tuple[str, str]]:
    """--show-config's table: setting -> (value, origin)."""
    rows = [line.split("│")[1:4] for line in output.splitlines() if line.count("│") == 4]
    return {name.strip(): (value.strip(), origin.strip()) for name, value, origin in rows}


def test_fcn16s_from_fcn32s_weights_trains_at_the_papers_lr_over_100(cli, in_tmp, voc_dir):
    assert cli("train", "fcn32s", *TINY_SHAPES, *TINY_FCN, "--iters", "1").exit_code == 0
    weights = "runs/fcn32s/1/last.pt"
    rows = shown(cli("train", "fcn16s", "--data", voc_dir, "--weights", weights,
                     "--show-config").output)  # fmt: skip
    assert rows["lr"] == ("1e-06", "recipe, later stage")
    assert rows["iters"] == ("5000", "recipe, later stage")
    assert rows["skip_scale (model)"] == ("False", "recipe, later stage")
    # without --weights: at once from ImageNet, with the paper's lr
    rows = shown(cli("train", "fcn16s", "--data", voc_dir, "--show-config").output)
    assert rows["lr"] == ("0.0001", "recipe") and rows["iters"] == ("10000", "recipe")
    assert rows["skip_scale (model)"] == ("True", "recipe")
    # a flag still wins
    rows = shown(cli("train", "fcn16s", "--data", voc_dir, "--weights", weights, "--lr", "0.01",
                     "--show-config").output)  # fmt: skip
    assert rows["lr"] == ("0.01", "flag")

    small = ["--img-size", "32", "--batch-size", "2", "--workers", "0", "--iters", "1"]
    result = cli("train", "fcn16s", "--data", voc_dir, "--weights", weights, *TINY_FCN, *small)
    assert result.exit_code == 0, result.output
    assert "settings for a later training stage" in result.output
    saved = yaml.safe_load((in_tmp / "runs/fcn16s/1/config.yaml").read_text())
    assert saved["lr"] == pytest.approx(1e-6) and saved["model"]["skip_scale"] is False


def test_published_weights_are_no_later_stage():
    cfg = resolve_config(get_recipe("fcn8s"), {"data": "d", "weights": "torchvision:vgg16"})
    assert cfg.lr == 1e-4 and cfg.iters == 15_000 and cfg.model["skip_scale"] is True
    assert resolve_config(get_recipe("fcn32s"), {"data": "d"}).iters == 5000


def skip_inputs(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """What score_pool4 and score_pool3 receive."""
    seen = {}
    hooks = [
        getattr(model, name).register_forward_pre_hook(
            lambda _, args, name=name: seen.__setitem__(name, args[0])
        )
        for name in ("score_pool4", "score_pool3")
    ]
    model(images)
    for hook in hooks:
        hook.remove()
    return seen


def test_at_once_skip_scaling_is_001_on_pool4_and_00001_on_pool3():
    recipe = get_recipe("fcn8s")
    plain = recipe.build_model(3, **TINY).eval()
    scaled = recipe.build_model(3, **TINY, skip_scale=True).eval()
    scaled.load_state_dict(plain.state_dict())  # no extra tensors: the scales are constants
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        raw, low = skip_inputs(plain, images), skip_inputs(scaled, images)
    assert raw["score_pool4"].abs().max() > 0
    torch.testing.assert_close(low["score_pool4"], raw["score_pool4"] * 0.01)
    torch.testing.assert_close(low["score_pool3"], raw["score_pool3"] * 0.0001)
