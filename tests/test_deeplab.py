"""The DeepLab family: dilated backbones, ASPP, multi-grid, LargeFOV, parameter counts, pretrained
weights from the torch cache, and the classifier's 10x learning rate."""

import math

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights

from segcli.config import resolve_config
from segcli.engine.optim import build_optimizer
from segcli.errors import ConfigError
from segcli.nn.aspp import ASPPScores
from segcli.nn.pretrained import cached_weights_path
from segcli.nn.resnet import DilatedResNet
from segcli.recipe import get_recipe
from segcli.recipes.deeplab_v1 import decimate_fc
from segcli.recipes.deeplab_v3 import build_encoder

H, W = 129, 97


def conv_dilations(layer: nn.Module) -> list[int]:
    """Dilation of each bottleneck's 3x3 convolution."""
    return [block.conv2.dilation[0] for block in layer]


@pytest.mark.parametrize("output_stride", [16, 8])
def test_aspp_output_shapes_at_both_output_strides(output_stride):
    with torch.device("meta"):  # the paper-size ResNet-101 + ASPP, shapes only
        resnet, aspp = build_encoder("resnet101", output_stride, (1, 2, 4), (6, 12, 18), False)
        features = resnet.eval()(torch.empty(2, 3, H, W))
        out = aspp.eval()(features["out"])
    size = (math.ceil(H / output_stride), math.ceil(W / output_stride))
    assert features["out"].shape == (2, 2048, *size)
    assert features["low"].shape == (2, 256, math.ceil(H / 4), math.ceil(W / 4))
    assert out.shape == (2, 256, *size)
    # v3 section 3.3: rates (6, 12, 18) at output stride 16, doubled at 8
    rates = [branch[0].dilation[0] for branch in aspp.branches[1:4]]
    assert rates == [r * 16 // output_stride for r in (6, 12, 18)]


def test_aspp_l_sums_four_branches_to_class_scores():
    aspp = ASPPScores(32, 21).eval()
    x = torch.randn(1, 32, 9, 7)
    assert aspp(x).shape == (1, 21, 9, 7)
    assert [b.dilation[0] for b in aspp.branches] == [6, 12, 18, 24]
    assert torch.allclose(aspp(x), sum(b(x) for b in aspp.branches))


@pytest.mark.parametrize(
    "output_stride, block3, block4", [(16, [1] * 23, [2, 4, 8]), (8, [2] * 23, [4, 8, 16])]
)
def test_multi_grid_rates_are_set_on_the_convolutions(output_stride, block3, block4):
    with torch.device("meta"):
        net = DilatedResNet("resnet101", output_stride, (1, 2, 4)).body
    assert conv_dilations(net.layer3) == block3
    assert conv_dilations(net.layer4) == block4  # v3 section 3.2: 2 * (1, 2, 4) at stride 16
    for block in net.layer4:
        assert block.conv2.padding == block.conv2.dilation  # size kept
    dilated = [net.layer4] + ([net.layer3] if output_stride == 8 else [])
    strides = {m.stride for layer in dilated for m in layer.modules() if isinstance(m, nn.Conv2d)}
    assert strides == {(1, 1)}


def test_multi_grid_needs_one_rate_per_block4_unit():
    with pytest.raises(ConfigError, match="resnet18's block4 has 2 units"):
        DilatedResNet("resnet18", 16, (1, 2, 4), width=0.125)
    with pytest.raises(ConfigError, match="output_stride"):
        DilatedResNet("resnet18", 32, width=0.125)


def test_large_fov_layers_and_output_stride_8():
    model = get_recipe("deeplabv1").build_model(21, width=0.125, fc_channels=64).eval()
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for p in pools] == [(3, 2, 1)] * 3 + [
        (3, 1, 1)
    ] * 2
    conv5 = [m for m in model.features[-7:] if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in conv5] == [(2, 2)] * 3
    assert model.fc6[0].kernel_size == (3, 3) and model.fc6[0].dilation == (12, 12)
    with torch.no_grad():
        features = model.features(torch.zeros(1, 3, H, W))
        assert features.shape[-2:] == (math.ceil(H / 8), math.ceil(W / 8))
        assert model(torch.zeros(1, 3, H, W)).shape == (1, 21, H, W)


# Trainable parameters with 21 classes. v1: table 2 of the paper gives 20.5M for
# DeepLab-CRF-LargeFOV; the ResNet-101 models are 42.5M of backbone plus their heads.
PAPER_COUNTS = {
    "deeplabv1": 20.5,
    "deeplabv2": 44.0,
    "deeplabv3": 58.0,
    "deeplabv3plus": 45.7,
}


@pytest.mark.parametrize("name", PAPER_COUNTS)
def test_parameter_counts_of_the_paper_architectures(name):
    count = get_recipe(name).count_parameters()  # default options, meta device
    assert round(count / 1e6, 1) == PAPER_COUNTS[name]
    if name != "deeplabv1":
        assert 43e6 <= count <= 60e6
        assert get_recipe(name).count_parameters(backbone="resnet50") < count - 18e6


def test_decimate_fc_subsamples_channels_and_taps():
    fc = {
        "weight6": torch.randn(16, 8, 7, 7),
        "bias6": torch.randn(16),
        "weight7": torch.randn(16, 16, 1, 1),
        "bias7": torch.randn(16),
    }
    small = decimate_fc(fc, 4)
    assert small["weight6"].shape == (4, 8, 3, 3) and small["weight7"].shape == (4, 4, 1, 1)
    assert torch.equal(small["weight6"][1, :, 2, 1], fc["weight6"][4, :, 6, 3])
    assert torch.equal(small["bias7"], fc["bias7"][::4])
    with pytest.raises(ConfigError, match="must divide"):
        decimate_fc(fc, 5)


def test_pretrained_resnet_comes_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="not in the local torch cache"):
        DilatedResNet("resnet18", 16, pretrained=True)
    reference = DilatedResNet("resnet18", 16).body
    state = {k: v for k, v in reference.state_dict().items()}
    state.update({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)})
    path = cached_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    loaded = DilatedResNet("resnet18", 8, pretrained=True).body
    assert torch.equal(loaded.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert loaded.layer4[1].conv2.dilation == (4, 4)
    with pytest.raises(ConfigError, match="full-width"):
        DilatedResNet("resnet18", 16, pretrained=True, width=0.5)


@pytest.mark.parametrize(
    "name, options", [("deeplabv1", {"width": 0.125}), ("deeplabv2", {"backbone": "resnet18"})]
)
def test_final_classifier_gets_ten_times_the_learning_rate(name, options):
    recipe = get_recipe(name)
    cfg = resolve_config(recipe, {"data": "some/folder"})  # the paper's defaults, not quick
    assert cfg.head_lr_mult == 10
    model = recipe.build_model(21, **{**recipe.options, **options, "width": 0.125})
    groups = build_optimizer(cfg, model).param_groups
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert set(lr_of) == {id(p) for p in model.parameters()}
    head = [p for n, p in model.named_parameters() if n.startswith("classifier.")]
    assert sorted({round(lr_of[id(p)] / cfg.lr, 6) for p in head}) == [10, 20]  # biases 2x
    rest = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    assert {round(lr_of[id(p)] / cfg.lr, 6) for p in rest} <= {1, 2}  # ResNets have no biases
