"""Backbone stages as module names, for `--freeze N` (Detectron2's FREEZE_AT: 1 freezes the
stem, 2 the stem and the first stage, ...) and `--freeze heads` (every stage).

A model lists its stages in a `backbone_stages` attribute: a tuple of stages, each a tuple of
submodule names, input side first.
"""

from __future__ import annotations

from torch import nn


def resnet_stages(prefix: str) -> tuple[tuple[str, ...], ...]:
    """The stem (conv1, bn1) and layer1-4 of a torchvision ResNet at `prefix`."""
    return ((f"{prefix}.conv1", f"{prefix}.bn1"),) + tuple(
        (f"{prefix}.layer{i}",) for i in range(1, 5)
    )


def pooled_stages(prefix: str, layers: nn.Sequential) -> tuple[tuple[str, ...], ...]:
    """The blocks of a plain conv net such as VGG (conv1_x .. conv5_x), each ending at a
    max-pooling layer; only the layers that hold parameters are named."""
    stages, current = [], []
    for index, layer in enumerate(layers):
        if any(True for _ in layer.parameters()):
            current.append(f"{prefix}.{index}")
        if isinstance(layer, nn.MaxPool2d) and current:
            stages.append(tuple(current))
            current = []
    if current:
        stages.append(tuple(current))
    return tuple(stages)
