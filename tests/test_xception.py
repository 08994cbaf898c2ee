"""DeepLab v3+'s modified aligned Xception-65 (timm): its size, output stride 16, stages for
--freeze, and ImageNet weights from the Hugging Face cache only (the tests are offline)."""

import math

import pytest
import torch
from safetensors.torch import save_file

from segcli.errors import ConfigError
from segcli.nn.xception import WEIGHTS, WEIGHTS_FILE, AlignedXception
from segcli.recipe import get_recipe

from helpers import TINY_SHAPES

H, W = 129, 97
# timm's xception65: 39,916,312 parameters with its 2048 x 1000 ImageNet classifier (2,049,000)
XCEPTION65_FEATURES = 39_916_312 - 2_049_000


def hub_cache(monkeypatch, path) -> None:
    """Point the Hugging Face cache at `path` (huggingface_hub reads HF_HUB_CACHE at import)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(path))


@pytest.fixture(scope="module")
def xception() -> AlignedXception:
    return AlignedXception(16).eval()


def test_xception65_size_and_output_stride_16(xception):
    assert sum(p.numel() for p in xception.parameters()) == XCEPTION65_FEATURES
    with torch.no_grad():
        features = xception(torch.rand(1, 3, H, W))
    assert features["out"].shape == (1, 2048, math.ceil(H / 16), math.ceil(W / 16))
    assert features["low"].shape == (1, 256, math.ceil(H / 4), math.ceil(W / 4))
    # the recipe: Xception-65 + separable ASPP and decoder, 21 classes
    assert round(get_recipe("deeplabv3plus").count_parameters() / 1e6, 2) == 41.06


def test_xception_stages_name_every_backbone_module(xception):
    model = get_recipe("deeplabv3plus").build_model(3, channels=16)
    named = {name for stage in model.backbone_stages for name in stage}
    assert len(model.backbone_stages) == 4  # stem, entry, middle and exit flow
    for name in named:
        model.get_submodule(name)
    top = {n for n, _ in model.backbone.body.named_children()}
    assert {name.removeprefix("backbone.body.") for name in named} == top


def test_pretrained_xception_offline_is_one_line(cli, in_tmp, monkeypatch):
    hub_cache(monkeypatch, in_tmp / "hub")
    result = cli("train", "deeplabv3plus", *TINY_SHAPES, "--set", "backbone=xception65",
                 "--set", "width=1.0", "--pretrained", "--iters", "1")  # fmt: skip
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "SEGCLI_OFFLINE is set" in lines[0], result.output
    assert "Traceback" not in result.output and not (in_tmp / "runs").exists()


def test_pretrained_xception_loads_from_the_hub_cache(tmp_path, monkeypatch, xception):
    hub_cache(monkeypatch, tmp_path)
    import timm

    imagenet = timm.create_model("xception65", pretrained=False).half().state_dict()
    snapshot = tmp_path / f"models--{WEIGHTS.replace('/', '--')}" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    save_file(imagenet, snapshot / WEIGHTS_FILE)
    loaded = AlignedXception(16, pretrained=True).body.state_dict()
    key = "blocks_10.stack.conv2.conv_dw.weight"
    assert torch.equal(loaded[key], imagenet[key.replace("_", ".", 1)].float())
    with pytest.raises(ConfigError, match="full width"):
        AlignedXception(16, width=0.5)
