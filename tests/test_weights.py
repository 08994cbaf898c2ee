"""--weights (checkpoints, state dicts, torchvision:NAME with legacy key names), --pretrained
downloads into the torch cache, --freeze, and --img-size for models that resize their input."""

from __future__ import annotations

import json
import re
import urllib.error

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights, get_weight

from segcli.config import resolve_config
from segcli.engine.freeze import freeze_backbone, train_mode
from segcli.engine.weights import load_weights
from segcli.errors import ConfigError
from segcli.nn.pretrained import cached_weights_path, load_pretrained
from segcli.recipe import get_recipe

from helpers import TINY_FCN, TINY_RCNN, TINY_SHAPES, set_flags

COCO_MASK_RCNN = get_weight("MaskRCNN_ResNet50_FPN_Weights.COCO_V1")
PREDICTORS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.")
# The paper's R50-FPN at a size a CPU trains in a second.
PAPER_RCNN_AT_64 = [
    *TINY_SHAPES,
    "--img-size",
    "64",
    "--set",
    "shapes_train=2",
    "--set",
    "shapes_val=1",
    *set_flags({"backbone": "resnet50", "fpn_channels": 256, "box_head_channels": 1024}),
    *set_flags({"mask_head_channels": 256}),
]


def legacy_names(state: dict) -> dict:
    """torchvision's pre-0.13 key names, as in maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth."""
    renamed = {}
    for key, value in state.items():
        key = re.sub(r"fpn\.(inner|layer)_blocks\.(\d)\.0\.", r"fpn.\1_blocks.\2.", key)
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        key = re.sub(r"mask_head\.(\d)\.0\.", lambda m: f"mask_head.mask_fcn{int(m[1]) + 1}.", key)
        renamed[key] = value
    return renamed


@pytest.fixture(scope="module")
def coco_mask_rcnn_state() -> dict:
    """A torchvision-architecture COCO Mask R-CNN R50-FPN state dict (91 classes, frozen batch
    norm as in the released file: no num_batches_tracked)."""
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91
    )
    return {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}


@pytest.mark.parametrize("names", ["current", "legacy"])
@pytest.mark.parametrize("recipe", ["mask_rcnn", "ms_rcnn"])
def test_torchvision_mask_rcnn_loads_all_but_the_class_specific_layers(
    coco_mask_rcnn_state, recipe, names
):
    state = coco_mask_rcnn_state if names == "current" else legacy_names(coco_mask_rcnn_state)
    chosen = get_recipe(recipe)
    model = chosen.build_model(3, **{**chosen.options, "frozen_bn": True})
    report = load_weights(model, dict(state), "file.pth")
    new_heads = PREDICTORS + (("roi_heads.maskiou_head.",) if recipe == "ms_rcnn" else ())
    assert report.skipped and all(k.startswith(new_heads) for k in report.skipped)
    class_specific = {  # the mask predictor's deconvolution is class-agnostic: it loads
        k for k in model.state_dict() if k.startswith(PREDICTORS) and "conv5_mask" not in k
    }
    assert {k for k, why in report.skipped.items() if why == "shape"} == class_specific
    assert not report.unexpected_skips(model.class_specific_modules)
    # every FPN, RPN and mask-head tensor came from the file, under its new name
    source = coco_mask_rcnn_state
    for key in ("backbone.fpn.inner_blocks.0.0.weight", "rpn.head.conv.0.0.weight"):
        assert torch.equal(model.state_dict()[key], source[key])
    assert torch.equal(
        model.state_dict()["roi_heads.mask_head.3.0.weight"],
        source["roi_heads.mask_head.3.0.weight"],
    )
    assert sorted(report.unused) == sorted(class_specific)


@pytest.mark.slow
def test_torchvision_name_through_the_cli_writes_weights_json(
    cli, in_tmp, coco_mask_rcnn_state, monkeypatch
):
    """`--weights torchvision:maskrcnn_resnet50_fpn` from the torch cache (the legacy file);
    the run says what it loaded, and the R-CNN starts with frozen batch norm."""
    monkeypatch.setenv("TORCH_HOME", str(in_tmp / "torch"))
    path = cached_weights_path(COCO_MASK_RCNN)
    path.parent.mkdir(parents=True)
    torch.save(legacy_names(coco_mask_rcnn_state), path)
    result = cli(
        "train", "mask_rcnn", "--iters", "1", *PAPER_RCNN_AT_64,
        "--weights", "torchvision:maskrcnn_resnet50_fpn",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "frozen_bn=True" in result.output and "roi_heads: 14/20 loaded (6 shape)" in result.output
    )
    assert "outside the class-specific layers" not in " ".join(result.output.split())
    report = json.loads((in_tmp / "runs/mask_rcnn/1/weights.json").read_text())
    assert set(report) == {"source", "loaded", "skipped", "unused"}
    assert report["source"] == "torchvision:maskrcnn_resnet50_fpn"
    assert set(report["skipped"].values()) == {"shape"} and len(report["skipped"]) == 6
    assert (
        len(report["loaded"]) == len(torch.load(in_tmp / "runs/mask_rcnn/1/last.pt")["model"]) - 6
    )


def test_unknown_torchvision_weights_are_one_line(cli, in_tmp):
    result = cli("train", "mask_rcnn", "--weights", "torchvision:maskrcnn_resnet50_fnp")
    assert result.exit_code == 2
    assert "did you mean maskrcnn_resnet50_fpn" in result.output and not (in_tmp / "runs").exists()


def test_deeplab_backbone_from_torchvision_segmentation_names():
    torch.manual_seed(0)
    source = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=False
    ).state_dict()
    recipe = get_recipe("deeplabv3")
    model = recipe.build_model(4, **{**recipe.options, "backbone": "resnet50"})
    report = load_weights(model, dict(source), "torchvision:deeplabv3_resnet50")
    body = [k for k in model.state_dict() if k.startswith("backbone.body.")]
    assert body and set(body) <= set(report.loaded)
    key = "backbone.body.layer4.2.conv3.weight"
    assert torch.equal(model.state_dict()[key], source["backbone.layer4.2.conv3.weight"])
    # ASPP has other names than torchvision's head: it starts as initialised, and is said so
    assert report.unexpected_skips(model.class_specific_modules)[0].startswith("aspp.")


def test_pretrained_downloads_into_the_torch_cache_when_online(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("SEGCLI_OFFLINE", raising=False)
    weights = ResNet18_Weights.IMAGENET1K_V1
    served = torchvision.models.resnet18().state_dict()
    fetched = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append((url, progress))
        torch.save(served, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setattr(torch.hub, "HASH_REGEX", re.compile(r"(?!)"))  # no hash in the name
    state = load_pretrained(weights, "ImageNet resnet18")
    assert fetched == [(weights.url, True)] and cached_weights_path(weights).is_file()
    assert torch.equal(state["fc.weight"], served["fc.weight"])
    load_pretrained(weights, "ImageNet resnet18")  # cached now: no second download
    assert len(fetched) == 1


def test_offline_or_unreachable_is_one_line_naming_the_file(cli, in_tmp, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(in_tmp / "torch"))
    result = cli("train", "deeplabv3", "--pretrained", "--set", "width=1.0")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "resnet18-f37072fd.pth" in result.output and "SEGCLI_OFFLINE" in result.output
    assert not (in_tmp / "runs").exists()

    monkeypatch.delenv("SEGCLI_OFFLINE")

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ConfigError, match="download failed: Name or service not known"):
        load_pretrained(ResNet18_Weights.IMAGENET1K_V1, "ImageNet resnet18")


def _tensors(path, prefix: str) -> dict:
    return {k: v for k, v in torch.load(path)["model"].items() if k.startswith(prefix)}


@pytest.mark.slow
def test_freeze_heads_keeps_the_rcnn_backbone_bit_equal(cli, in_tmp):
    """matterport's two stages: heads from the first run's weights, then everything."""
    tiny = [*TINY_SHAPES, "--img-size", "64", *set_flags(TINY_RCNN), "--set", "lr=0.01"]
    assert cli("train", "mask_rcnn", "--iters", "1", *tiny).exit_code == 0
    start = "runs/mask_rcnn/1/last.pt"
    result = cli(
        "train", "mask_rcnn", "--iters", "2", *tiny, "--weights", start, "--freeze", "heads"
    )
    assert result.exit_code == 0, result.output
    assert "--freeze heads: 6 backbone modules frozen" in result.output
    before, after = (_tensors(p, "") for p in (start, "runs/mask_rcnn/2/last.pt"))
    body = [k for k in after if k.startswith("backbone.body.")]
    assert body and all(torch.equal(after[k], before[k]) for k in body)
    heads = [
        k for k in after if k.startswith(("backbone.fpn.", "rpn.", "roi_heads.")) and k in before
    ]
    assert any(not torch.equal(after[k], before[k]) for k in heads)
    config = (in_tmp / "runs/mask_rcnn/2/config.yaml").read_text()
    # the checkpoint's architecture is inherited, its trainable batch norm (from scratch) too
    assert "freeze: heads" in config and "frozen_bn: false" in config
    # stage two: every layer, from the heads run's weights
    result = cli(
        "train", "mask_rcnn", "--iters", "1", *tiny, "--weights", "runs/mask_rcnn/2/last.pt"
    )
    assert result.exit_code == 0, result.output
    final = _tensors("runs/mask_rcnn/3/last.pt", "backbone.body.layer4.")
    assert any(not torch.equal(final[k], after[k]) for k in final if "weight" in k)


@pytest.mark.slow
def test_freeze_heads_keeps_semantic_batch_norm_statistics(cli, in_tmp):
    flags = [*TINY_SHAPES, "--set", "width=0.125", "--set", "channels=16"]
    assert cli("train", "deeplabv3", "--iters", "1", *flags).exit_code == 0
    start = "runs/deeplabv3/1/last.pt"
    result = cli(
        "train", "deeplabv3", "--iters", "2", *flags, "--weights", start, "--freeze", "heads"
    )
    assert result.exit_code == 0, result.output
    before, after = _tensors(start, ""), _tensors("runs/deeplabv3/2/last.pt", "")
    body = [k for k in after if k.startswith("backbone.body.")]
    assert any("running_mean" in k for k in body)
    assert all(torch.equal(after[k], before[k]) for k in body)
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert not torch.equal(after["aspp.project.0.weight"], before["aspp.project.0.weight"])


def test_freeze_n_stages_and_its_limits():
    recipe = get_recipe("fcn8s")
    model = recipe.build_model(3, **{**recipe.options, "width": 0.125, "fc_channels": 8})
    assert freeze_backbone(model, "2") == ["features.0", "features.2", "features.5", "features.7"]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen >= {"features.0.weight", "features.7.bias"} and "features.10.weight" not in frozen
    with pytest.raises(ConfigError, match="only 6 stages"):
        freeze_backbone(model, "7")
    with pytest.raises(ConfigError, match="expected none, heads or a number"):
        resolve_config(recipe, {"freeze": "backbone"})
    resnet = get_recipe("deeplabv3").build_model(3, **{**get_recipe("deeplabv3").options})
    freeze_backbone(resnet, "1")  # the stem: conv1 and bn1
    train_mode(resnet)
    assert not resnet.backbone.body.bn1.training and resnet.backbone.body.layer1[0].bn1.training


@pytest.mark.parametrize(
    "recipe, flags, sets, expected",
    [
        ("mask_rcnn", {"data": "d"}, [], {"min_size": 800, "max_size": 1333}),
        ("mask_rcnn", {"data": "d", "img_size": 320}, [], {"min_size": 320, "max_size": 533}),
        ("mask_rcnn", {"data": "d", "img_size": 320}, ["min_size=300"], {"min_size": 300}),
        ("yolact", {"data": "d", "img_size": 320}, [], {"size": 320}),
        ("yolact", {}, [], {"size": 128}),  # the quick profile's size
    ],
)
def test_img_size_is_the_network_input_size_of_instance_recipes(recipe, flags, sets, expected):
    chosen = get_recipe(recipe)
    cfg = resolve_config(chosen, flags, sets)
    assert {k: cfg.model[k] for k in expected} == expected
    if recipe == "mask_rcnn":
        small = {**cfg.model, "backbone": "resnet18", "fpn_channels": 16}
        model = chosen.build_model(3, **small)
        assert model.transform.min_size == (expected["min_size"],)


@pytest.mark.slow
def test_freeze_is_kept_on_resume(cli, in_tmp):
    flags = [*TINY_SHAPES, *TINY_FCN]
    assert cli("train", "fcn32s", "--iters", "1", *flags, "--freeze", "3").exit_code == 0
    first = _tensors("runs/fcn32s/1/last.pt", "")
    result = cli("train", "fcn32s", "--iters", "3", *flags, "--resume", "auto")
    assert result.exit_code == 0, result.output
    assert "--freeze 3" in result.output
    resumed = _tensors("runs/fcn32s/1/last.pt", "")
    conv3 = [k for k in first if k.startswith("features.10.")]  # conv3_1: stage 3, frozen
    assert conv3 and all(torch.equal(resumed[k], first[k]) for k in conv3)
    assert not torch.equal(resumed["features.17.weight"], first["features.17.weight"])  # conv4_1


@pytest.mark.slow
def test_second_stage_builds_the_first_stages_architecture(cli, in_tmp):
    """--weights from a segcli checkpoint of the recipe takes its model options (as a YOLO
    or Detectron2 user expects of a checkpoint), unless flags say otherwise."""
    flags = [*TINY_SHAPES, "--data", "shapes"]
    assert cli("train", "fcn16s", "--iters", "1", *flags, *TINY_FCN).exit_code == 0
    result = cli("train", "fcn16s", "--iters", "1", *flags, "--weights", "runs/fcn16s/1/last.pt")
    assert result.exit_code == 0, result.output
    assert "its model options are this run's defaults" in result.output
    report = json.loads((in_tmp / "runs/fcn16s/2/weights.json").read_text())
    assert report["skipped"] == {} and report["unused"] == []
    config = (in_tmp / "runs/fcn16s/2/config.yaml").read_text()
    assert "width: 0.125" in config and "fc_channels: 32" in config


def test_rcnn_pretrained_backbone_is_the_cached_imagenet_resnet(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    imagenet = torchvision.models.resnet18().state_dict()
    path = cached_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(imagenet, path)
    recipe = get_recipe("mask_rcnn")
    options = {**recipe.options, **TINY_RCNN, **recipe.pretrained_options}
    body = recipe.build_model(5, pretrained=True, **options).backbone.body
    state = body.state_dict()
    assert state and all(torch.equal(v, imagenet[k]) for k, v in state.items())
    # Frozen batch norm, and Detectron's FREEZE_AT 2: the stem and layer1 stay fixed.
    fixed = {name.split(".")[0] for name, p in body.named_parameters() if not p.requires_grad}
    assert recipe.pretrained_options["frozen_bn"] and fixed == {"conv1", "layer1"}
