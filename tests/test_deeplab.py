"""The DeepLab family: dilated backbones, ASPP, multi-grid, LargeFOV, the v3+ decoder, parameter
counts, pretrained weights from the torch cache, the classifier's 10x learning rate, and the
batch-size pre-flight of image pooling."""

import math

import pytest
import torch
from torch import nn
from torchvision import models
from torchvision.models import ResNet18_Weights

from segcli.config import resolve_config
from segcli.engine.optim import build_optimizer
from segcli.errors import ConfigError
from segcli.nn.aspp import ASPPScores
from segcli.nn.pretrained import cached_weights_path
from segcli.nn.resnet import DilatedResNet, resnet_layer
from segcli.recipe import get_recipe
from segcli.recipes.nets.deeplab_v1 import decimate_fc
from segcli.recipes.nets.deeplab_v3 import build_encoder

from helpers import TINY_SHAPES

H, W = 129, 97
DEEPLABS = ("deeplabv1", "deeplabv2", "deeplabv3", "deeplabv3plus", "deeplabv3plus_r101")


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
    aspp = ASPPScores(4, 3).eval()
    assert aspp(torch.randn(1, 4, 9, 7)).shape == (1, 3, 9, 7)
    # An impulse at the centre of a 61x61 map: a 3x3 kernel at rate r answers at offsets
    # {-r, 0, r}^2 only; the centre takes every branch's middle tap (summed, v2 figure 4), an
    # offset (r, r) only branch r's top-left tap (cross-correlation).
    x = torch.zeros(1, 4, 61, 61)
    x[0, 1, 30, 30] = 1.0
    with torch.no_grad():
        y = aspp(x)[0]
    rates = (6, 12, 18, 24)
    offsets = {(a * r, b * r) for r in rates for a in (-1, 0, 1) for b in (-1, 0, 1)}
    support = {(i - 30, j - 30) for i, j in (y.abs().sum(0) > 0).nonzero().tolist()}
    assert support == offsets
    weights = [b.weight[:, 1] for b in aspp.branches]  # [K,3,3] each
    assert torch.allclose(y[:, 30, 30], sum(w[:, 1, 1] for w in weights))
    for r, w in zip(rates, weights):
        assert torch.allclose(y[:, 30 + r, 30 + r], w[:, 0, 0])
        assert torch.allclose(y[:, 30 - r, 30], w[:, 2, 1])


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


@pytest.mark.parametrize("builder", [models.resnet18, models.resnet50])
def test_narrow_layers_are_built_as_torchvision_builds_its_own(builder):
    # resnet_layer stands in for the private ResNet._make_layer: the same blocks, strides and
    # projection shortcuts, so the same state-dict keys and shapes.
    with torch.device("meta"):
        net = builder()
        block, inplanes = type(net.layer1[0]), 64
        for i, planes in enumerate((64, 128, 256, 512), 1):
            layer = getattr(net, f"layer{i}")
            ours = resnet_layer(
                block, inplanes, planes, len(layer), 1 if i == 1 else 2, nn.BatchNorm2d
            )
            assert repr(ours) == repr(layer)
            inplanes = planes * block.expansion


def test_multi_grid_needs_one_rate_per_block4_unit():
    with pytest.raises(ConfigError, match="resnet18's block4 has 2 units"):
        DilatedResNet("resnet18", 16, (1, 2, 4), width=0.125)
    with pytest.raises(ConfigError, match="output_stride"):
        DilatedResNet("resnet18", 32, width=0.125)


def test_large_fov_layers_and_output_stride_8():
    model = get_recipe("deeplabv1").build_model(21, width=0.125, fc_channels=64).eval()
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    pool5a = model.pool5a  # the authors' prototxt: 3x3 / 1 / 1 average pooling before fc6
    assert isinstance(pool5a, nn.AvgPool2d) and pool5a.count_include_pad
    assert (pool5a.kernel_size, pool5a.stride, pool5a.padding) == (3, 1, 1)
    assert list(dict(model.named_children())) == [
        "features", "pool5a", "fc6", "fc7", "classifier"]  # fmt: skip
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


# Trainable parameters with 21 classes, in millions, of this implementation at its default
# options. Only v1's 20.5M is the paper's own figure (table 2, DeepLab-CRF-LargeFOV); the papers
# state none for the ResNet-101 models, whose counts are torchvision's 42.5M backbone (without
# its fc) plus the heads built here.
EXPECTED_COUNTS = {
    "deeplabv1": 20.5,
    "deeplabv2": 44.0,
    "deeplabv3": 58.0,
    "deeplabv3plus_r101": 59.3,
}


@pytest.mark.parametrize("name", EXPECTED_COUNTS)
def test_parameter_counts_of_the_paper_architectures(name):
    count = get_recipe(name).count_parameters()  # default options, meta device
    assert round(count / 1e6, 1) == EXPECTED_COUNTS[name]
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
    "name, options",
    [("deeplabv1", {"width": 0.125}), ("deeplabv2", {"backbone": "resnet18", "width": 0.125})],
)
def test_final_classifier_gets_ten_times_the_learning_rate(name, options):
    recipe = get_recipe(name)
    cfg = resolve_config(recipe, quick=False)  # the paper's defaults, not the quick profile
    assert cfg.head_lr_mult == 10 and resolve_config(recipe).head_lr_mult == 1  # quick's
    model = recipe.build_model(21, **{**recipe.options, **options})
    groups = build_optimizer(cfg, model).param_groups
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert set(lr_of) == {id(p) for p in model.parameters()}
    head = [p for n, p in model.named_parameters() if n.startswith("classifier.")]
    assert sorted({round(lr_of[id(p)] / cfg.lr, 6) for p in head}) == [10, 20]  # biases 2x
    rest = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    assert {round(lr_of[id(p)] / cfg.lr, 6) for p in rest} <= {1, 2}  # ResNets have no biases


@pytest.mark.parametrize("name", DEEPLABS)
def test_full_size_models_map_an_odd_input_to_logits_of_its_size(name):
    recipe = get_recipe(name)
    with torch.device("meta"):  # the paper-size models, shapes only
        model = recipe.build_model(21, **recipe.options).eval()
        assert model(torch.empty(1, 3, H, W)).shape == (1, 21, H, W)


def meta_v3plus(**options) -> nn.Module:
    recipe = get_recipe("deeplabv3plus")
    with torch.device("meta"):
        return recipe.build_model(21, **{**recipe.options, **options}).eval()


def test_v3plus_decoder_and_separable_aspp():
    model = meta_v3plus()
    reduce = model.decoder.reduce[0]  # v3+ section 4.1, table 1: 1x1 to 48 channels
    assert (reduce.in_channels, reduce.out_channels, reduce.kernel_size) == (256, 48, (1, 1))
    for branch, rate in zip(model.aspp.branches[1:4], (6, 12, 18)):  # section 3.1, figure 3
        depthwise, pointwise = branch[0][0], branch[1][0]
        assert depthwise.in_channels == depthwise.out_channels == depthwise.groups == 2048
        assert (depthwise.kernel_size, depthwise.dilation) == ((3, 3), (rate, rate))
        assert (pointwise.in_channels, pointwise.out_channels, pointwise.groups) == (2048, 256, 1)
    assert model.aspp.project[0].in_channels == 5 * 256  # 1x1, three 3x3, image pooling
    first, second = (block[0][0] for block in model.decoder.refine)  # their depthwise convs
    assert first.in_channels == first.groups == 256 + 48
    assert second.in_channels == second.groups == 256
    assert model.decoder.refine[0][1][0].out_channels == 256  # table 2: 256-channel 3x3 convs
    seen = {}
    model.decoder.refine.register_forward_pre_hook(lambda m, a: seen.update(cat=a[0].shape))
    with torch.device("meta"):
        model(torch.empty(1, 3, H, W))
    assert seen["cat"] == (1, 256 + 48, math.ceil(H / 4), math.ceil(W / 4))


def test_v3plus_plain_convolutions_as_the_papers_resnet101_model():
    recipe = get_recipe("deeplabv3plus_r101")  # v3+ section 4.2, table 3
    assert recipe.options["backbone"] == "resnet101" and recipe.options["separable"] is False
    with torch.device("meta"):
        model = recipe.build_model(21, **recipe.options).eval()
    convs = [b[0] for b in model.aspp.branches[1:4]] + [b[0] for b in model.decoder.refine]
    assert all(c.groups == 1 and c.kernel_size == (3, 3) for c in convs)
    assert [c.dilation[0] for c in convs] == [6, 12, 18, 1, 1]
    assert convs[3].in_channels == 256 + 48


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3plus"])
def test_batch_of_one_is_refused_before_training(cli, in_tmp, name):
    at = TINY_SHAPES.index("--batch-size")
    flags = TINY_SHAPES[:at] + TINY_SHAPES[at + 2 :]
    narrow = ("--set", "backbone=resnet18", "--set", "multi_grid=[1,2]", "--set", "width=0.125")
    result = cli("train", name, *flags, *narrow, "--batch-size", "1", "--iters", "1")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    expected = (
        f"error: {name} needs --batch-size >= 2 per process: the image-pooling branch's batch "
        "norm (DeepLab v3 section 3.3) normalises over the batch"
    )
    assert expected in lines and "Traceback" not in result.output
    assert not (in_tmp / "runs").exists()  # refused before a run folder was made
