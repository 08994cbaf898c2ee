"""The Recipe contract and the registry over segcli.recipes.* (the module is the registration)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from segcli.builder_options import builder_options
from segcli.errors import ConfigError, did_you_mean

TASKS = ("semantic", "instance")
# Class counts used to describe a recipe (parameter counts, benchmarks): PASCAL VOC and COCO.
REFERENCE_CLASSES = {"semantic": 21, "instance": 81}


@dataclass(frozen=True)
class Recipe:
    """One paper's model and training settings: a declaration that imports no torch, so that
    listing recipes and checking a command's settings take no time; the network loads on use.

    model: "module:function" of build_model(num_classes, pretrained=False, **options) ->
        nn.Module (segcli.recipes.nets.<paper>); `build_model` imports it.
    defaults: the paper's training settings (TrainConfig fields), each cited where it is set.
    option_overrides: build_model options whose value for this recipe is not the one in
        build_model's signature (deeplabv3plus_r101's ResNet-101 backbone); `options` holds
        them with the signature's defaults.
    quick: overrides (fields or options) for the built-in shapes data, so a laptop CPU trains
        the recipe in minutes; never applied to user data.
    loss: "module:function" of criterion(outputs, target, ignore_index) -> dict of named
        losses (semantic recipes only; None means pixel-wise cross-entropy).
    resize_options(size) -> the model options that make a model which resizes its own input
        run at `size` (`--img-size`), the first of them holding `size` itself (YOLACT's
        `size`, an R-CNN's `min_size`); None for models that take their input as it is.
    pretrained_options: model options for a run that starts from published or earlier weights
        (`--pretrained`, `--weights`), e.g. the R-CNNs' frozen batch norm.
    from_weights: settings (fields or options) of a later training stage, for a run that
        starts from an earlier stage's `--weights` (not `torchvision:NAME`); they sit just above
        `defaults`, so the quick profile, flags and `--set` win. E.g. FCN-16s/8s's learning
        rate divided by 100.
    variants: named inference-time alternatives, name -> {"options": model option overrides,
        "note": what differs}, that `segcli benchmark --compare` times side by side and
        `--variant NAME` picks, e.g. YOLACT's Fast NMS and standard NMS.
    prepare_target: "module:function" of prepare(mask, ignore_index) -> the criterion's target
        for one training sample (mask: class ids, long [H, W], after augmentation; returns a
        tensor or a dict of tensors), run in the DataLoader workers of the train split, so the
        criterion receives it batched and on the device (U-Net's border weight map).
    extra_metrics: "module:function" of extra(gt: pycocotools COCO, results: list of COCO
        results) -> dict of scores merged into an instance evaluation's result; its list of
        lines under "notes" is shown with the scores (MS R-CNN's MaskIoU correlation). It
        returns {} for results that lack its model's outputs (`eval --gt-json` applies every
        recipe's).
    """

    name: str
    task: str
    paper: str
    model: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    option_overrides: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)
    loss: str | None = None
    resize_options: Callable[[int], dict[str, Any]] | None = None
    pretrained_options: Mapping[str, Any] = field(default_factory=dict)
    from_weights: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prepare_target: str | None = None
    extra_metrics: str | None = None

    @property
    def build_model(self) -> Callable[..., Any]:
        return load_object(self.model)

    @property
    def options(self) -> dict[str, Any]:
        """build_model's keyword options (backbone, output_stride, ...) and this recipe's
        values: the signature's defaults, read without importing torch (segcli.builder_options),
        and `option_overrides`."""
        options = builder_options(self.model)
        unknown = set(self.option_overrides) - set(options)
        if unknown:
            raise ValueError(f"recipe {self.name}: {self.model} takes no {', '.join(unknown)}")
        return {**options, **self.option_overrides}

    @property
    def criterion(self) -> Callable[..., dict] | None:
        return load_object(self.loss) if self.loss else None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"recipe {self.name}: task must be one of {TASKS}")

    def count_parameters(self, num_classes: int | None = None, **options) -> int:
        """Trainable parameters with `num_classes` (default: VOC 21 / COCO 81 classes)."""
        import torch

        num_classes = num_classes or REFERENCE_CLASSES[self.task]
        with torch.device("meta"):
            model = self.build_model(num_classes, **{**self.options, **options})
        return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_object(reference: str) -> Any:
    """The object a "package.module:name" reference names, imported on first use."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def list_recipes() -> list[Recipe]:
    """Every recipe of every module in segcli.recipes, in module then declaration order."""
    import segcli.recipes as package

    recipes = []
    modules = [m for m in pkgutil.iter_modules(package.__path__) if not m.ispkg]  # not nets/
    for info in sorted(modules, key=lambda m: m.name):
        module = importlib.import_module(f"segcli.recipes.{info.name}")
        recipes.extend(getattr(module, "RECIPES", []))
    return recipes


def get_recipe(name: str) -> Recipe:
    """The recipe called `name` (`mask-rcnn` and `mask_rcnn` both work)."""
    by_name = {_normalise(r.name): r for r in list_recipes()}
    key = _normalise(name)
    if key in by_name:
        return by_name[key]
    hint = did_you_mean(key, by_name, cutoff=0.5, list_known=True)
    raise ConfigError(f"unknown recipe '{name}'{hint}")
