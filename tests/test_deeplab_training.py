"""DeepLab v1/v2 training as the papers do it: the loss on the stride-8 scores against ground
truth subsampled by 8, and v2's frozen batch norm."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.ops import FrozenBatchNorm2d

from segcli.config import resolve_config
from segcli.engine import checkpoint
from segcli.nn.pretrained import cached_weights_path
from segcli.nn.subsampled import subsampled_cross_entropy
from segcli.recipe import get_recipe

from helpers import TINY_SHAPES

TINY_V1 = {"width": 0.125, "fc_channels": 16}


@pytest.mark.parametrize("name", ["deeplabv1", "deeplabv2"])
def test_subsampled_loss_is_the_default_with_data_only(name):
    recipe = get_recipe(name)
    assert resolve_config(recipe, {"data": "d"}).model["subsampled_loss"] is True
    assert resolve_config(recipe, {}).model["subsampled_loss"] is False  # quick profile


def test_training_scores_at_stride_8_meet_every_8th_label():
    model = get_recipe("deeplabv1").build_model(3, **TINY_V1, subsampled_loss=True)
    images = torch.rand(2, 3, 81, 65)
    assert model.train()(images).shape == (2, 3, 11, 9)  # ceil(81 / 8), ceil(65 / 8)
    assert model.eval()(images).shape == (2, 3, 81, 65)
    scores = torch.randn(2, 3, 11, 9)
    target = torch.randint(0, 3, (2, 81, 65))
    target[0, :8, :8] = 255  # ignored at (0, 0) of the grid
    loss = subsampled_cross_entropy(scores, target, 255)["loss_ce"]
    expected = F.cross_entropy(scores, target[:, ::8, ::8], ignore_index=255)
    torch.testing.assert_close(loss, expected)
    off_grid = target.clone()
    off_grid[:, 1::8, :] = (off_grid[:, 1::8, :] + 1) % 3  # rows the subsampling skips
    torch.testing.assert_close(subsampled_cross_entropy(scores, off_grid, 255)["loss_ce"], loss)
    full = torch.randn(2, 3, 81, 65)  # input-size logits (the quick profile): plain loss
    torch.testing.assert_close(
        subsampled_cross_entropy(full, target, 255)["loss_ce"],
        F.cross_entropy(full, target, ignore_index=255),
    )


def fake_imagenet_resnet18() -> dict[str, torch.Tensor]:
    """ResNet-18 "ImageNet" weights in the torch cache, with batch norm statistics and affine
    values a training step would change."""
    state = resnet18().state_dict()
    for key, value in state.items():
        if ".bn" in key or key.startswith("bn1.") or "downsample.1" in key:
            if value.is_floating_point():
                state[key] = value + torch.rand_like(value)
    path = cached_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


@pytest.mark.slow
def test_v2_from_imagenet_keeps_batch_norm_frozen(cli, in_tmp, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(in_tmp / "torch"))
    imagenet = fake_imagenet_resnet18()
    result = cli("train", "deeplabv2", *TINY_SHAPES, "--set", "width=1.0", "--pretrained",
                 "--set", "subsampled_loss=true", "--iters", "2", "--lr", "0.1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "frozen_bn=True" in result.output
    after = checkpoint.load(in_tmp / "runs/deeplabv2/1/last.pt")["model"]
    bn = [k for k in after if k.startswith("backbone.body.layer1.0.bn1.")]
    assert {k.rsplit(".", 1)[1] for k in bn} == {"weight", "bias", "running_mean", "running_var"}
    for key in bn:  # statistics and affine as ImageNet's
        imagenet_key = key.removeprefix("backbone.body.")
        torch.testing.assert_close(after[key], imagenet[imagenet_key], rtol=0, atol=0)
    conv = "layer1.0.conv1.weight"
    assert not torch.equal(after[f"backbone.body.{conv}"], imagenet[conv])  # trained
    model, *_ = checkpoint.restore_model(in_tmp / "runs/deeplabv2/1/last.pt", "cpu")
    assert isinstance(model.backbone.body.layer1[0].bn1, FrozenBatchNorm2d)
