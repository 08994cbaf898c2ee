"""Test-time augmentation and dense-CRF post-processing: unit properties and the real CLI on a
tiny trained DeepLab v3+ checkpoint."""

import json
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
from segcli.data.shapes import ShapesDataset
from segcli.data.transforms import denormalize, eval_transform
from segcli.engine.checkpoint import restore_model
from segcli.errors import ConfigError
from segcli.ops.crf import crf_params, crf_predictor
from segcli.ops.tta import build_predictor, plain_logits, tta_predictor

from helpers import TINY_SHAPES

TINY_DEEPLAB = [
    *("--set", "backbone=resnet18", "--set", "multi_grid=[1,2]"),
    *("--set", "width=0.125", "--set", "channels=16"),
]


def pointwise_model() -> torch.nn.Module:
    """A 1x1 convolution: its output commutes with flips, and with resizing a flat image."""
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 4, 1).eval()


def test_tta_with_scale_one_and_no_flip_is_plain_prediction():
    model = pointwise_model()
    images = torch.randn(2, 3, 29, 23)
    plain = plain_logits(model, images)
    assert torch.equal(tta_predictor((1.0,), flip=False)(model, images), plain)
    # flipped logits are flipped back before averaging
    assert torch.allclose(tta_predictor((1.0,), flip=True)(model, images), plain, atol=1e-6)


def test_tta_resizes_every_scale_back_to_the_input():
    model = pointwise_model()
    flat = torch.ones(1, 3, 29, 23) * torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1)
    averaged = tta_predictor()(model, flat)  # v3's six scales, flipped too
    assert averaged.shape == (1, 4, 29, 23)
    assert torch.allclose(averaged, plain_logits(model, flat), atol=1e-5)
    with pytest.raises(ConfigError):
        tta_predictor((0.0,))


def test_denormalize_recovers_the_rgb_image_exactly():
    image = ShapesDataset("val", 37, 1).load(0)["image"]
    tensor = eval_transform()(image=image)["image"].unsqueeze(0)
    assert np.array_equal(denormalize(tensor)[0], image)


def blurred_prediction(mask: np.ndarray, shift: int) -> torch.Tensor:
    """Logits [1,2,H,W] of a smoothed, shifted copy of a binary mask: a coarse prediction."""
    moved = np.roll(mask.astype(np.float32), shift, axis=(0, 1))
    soft = cv2.GaussianBlur(moved, (0, 0), 4) * 0.8 + 0.1
    return torch.from_numpy(np.log(np.stack([1 - soft, soft])))[None].float()


def test_crf_improves_a_blurred_prediction():
    pytest.importorskip("pydensecrf.densecrf")
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(60, 8, (48, 56, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((48, 56), bool)
    cv2.circle(image, (30, 22), 12, (200, 40, 40), -1)
    truth[np.where(cv2.circle(np.zeros((48, 56), np.uint8), (30, 22), 12, 1, -1))] = True
    logits = blurred_prediction(truth, shift=3)
    images = eval_transform()(image=image)["image"][None]
    refined = crf_predictor(crf_params(), lambda model, x: logits)(None, images)
    before = (logits.argmax(1)[0].numpy() == truth).mean()
    after = (refined.argmax(1)[0].numpy() == truth).mean()
    assert before < 0.97 and after > before + 0.02, (before, after)


def test_crf_params_are_checked():
    with pytest.raises(ConfigError, match="did you mean"):
        build_predictor(crf=True, crf_items=["theta_alfa=80"])
    with pytest.raises(ConfigError, match="needs --crf"):
        build_predictor(crf_items=["w1=5"])


# --- the real CLI on a tiny trained checkpoint ------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("deeplab") / "run"
    args = ["train", "deeplabv3plus", *TINY_SHAPES, *TINY_DEEPLAB, "--iters", "2", "--out", out]
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out / "best.pt"


def scores(cli, in_tmp, checkpoint, *args) -> dict:
    result = cli("eval", checkpoint, "--workers", "0", "--json", "s.json", *args)
    assert result.exit_code == 0, result.output
    return json.loads((in_tmp / "s.json").read_text())


def layer3_convs(model) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(dilation, stride) of the first 3x3 convolution of each of the backbone's layer3 blocks."""
    return [(block.conv1.dilation, block.conv1.stride) for block in model.backbone.body.layer3]


def test_cli_tta_at_scale_one_equals_plain_eval(cli, in_tmp, checkpoint):
    plain = scores(cli, in_tmp, checkpoint)
    identity = scores(cli, in_tmp, checkpoint, "--tta", "--tta-scale", "1.0", "--no-tta-flip")
    assert identity == plain
    full = scores(cli, in_tmp, checkpoint, "--tta")
    assert 0 <= full["miou"] <= 1
    finer = scores(cli, in_tmp, checkpoint, "--set", "output_stride=8")  # v3 section 4.3
    assert 0 <= finer["miou"] <= 1
    # eval's --set reaches the model: output stride 8 dilates layer3 instead of striding it
    # (trained at the quick profile's 16), with the same weights
    model, _, cfg, _, _ = restore_model(checkpoint, "cpu")
    finer_model, _, finer_cfg, _, _ = restore_model(checkpoint, "cpu", ["output_stride=8"])
    assert cfg.model["output_stride"] == 16 and finer_cfg.model["output_stride"] == 8
    assert layer3_convs(model) == [((1, 1), (2, 2)), ((1, 1), (1, 1))]
    assert layer3_convs(finer_model) == [((2, 2), (1, 1)), ((2, 2), (1, 1))]
    weights, finer_weights = model.state_dict(), finer_model.state_dict()
    assert all(torch.equal(weights[k], finer_weights[k]) for k in weights)
    result = cli("eval", checkpoint, "--set", "lr=0.1")
    assert result.exit_code == 2 and "only model options" in result.output


def test_cli_crf_in_eval_and_infer(cli, in_tmp, checkpoint):
    pytest.importorskip("pydensecrf.densecrf")
    refined = scores(cli, in_tmp, checkpoint, "--crf", "--crf-param", "iterations=3")
    assert 0 <= refined["miou"] <= 1
    Image.fromarray(ShapesDataset("val", 40, 1).load(0)["image"]).save(in_tmp / "a.png")
    result = cli("infer", checkpoint, "a.png", "--crf", "--out", "pred")
    assert result.exit_code == 0, result.output
    assert Image.open(in_tmp / "pred" / "a.png").size == (40, 40)


def test_cli_crf_without_the_extra_says_how_to_install(cli, checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    result = cli("eval", checkpoint, "--crf")
    assert result.exit_code == 2
    assert "error: --crf needs the optional dense CRF package: pip install" in result.output
