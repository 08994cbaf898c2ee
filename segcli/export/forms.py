"""What `segcli export` puts in the file: a module with tensor inputs and a tuple of named
tensor outputs, built from a restored model by its task (or by the model's own export hook)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from segcli.data.transforms import IMAGENET_MEAN, IMAGENET_STD

IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


@dataclass
class ExportForm:
    """module(input named input_name) -> a tensor or a tuple of tensors, named output_names.

    compare_outputs: the outputs themselves are compared with PyTorch's (not for a detector
        exported whole: detections of equal score may come in another order).
    detections(outputs, image_sizes) -> list[dict]: the exported outputs as the detections of
        the model's eval forward, which they must reproduce (instance models).
    """

    module: nn.Module
    input_name: str
    input_axes: dict[int, str]  # the axes --dynamic frees
    output_names: tuple[str, ...]
    output_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    compare_outputs: bool = True
    detections: Callable[[Sequence, Sequence[tuple[int, int]]], list[dict]] | None = None
    note: str = ""
    input_help: str = "images: float32 [B,3,H,W], RGB in [0,1]"

    def __post_init__(self):
        # a new wrapper is in train mode, and the ONNX exporter restores the mode it found
        self.module.eval()

    @property
    def batched(self) -> bool:
        return self.input_axes.get(0) == "batch"

    def example(self, image: torch.Tensor) -> torch.Tensor:
        """The test image [3,H,W] as this form's input (a batch of one where it takes one)."""
        return image[None] if self.batched else image


class NormalisedSegmenter(nn.Module):
    """images [B,3,H,W] RGB in [0,1] -> logits [B,K,H,W]: the ImageNet normalisation that
    segcli's data pipeline applies, then the model, so the file takes plain images."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


class SingleImageDetector(nn.Module):
    """image [3,H,W] RGB in [0,1] -> the detection dict's tensors in `keys` order (torchvision's
    detection models export one image per call)."""

    def __init__(self, model: nn.Module, keys: Sequence[str]):
        super().__init__()
        self.model, self.keys = model, tuple(keys)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.model([image])[0]
        return tuple(result[k] for k in self.keys)


def export_form(model: nn.Module, task: str, image: torch.Tensor) -> ExportForm:
    """The form of `model` (eval mode) to export; `image` [3,H,W] in [0,1] is the test input."""
    hook = getattr(model, "export_module", None)
    if hook is not None:
        return _hook_form(hook())
    if task == "semantic":
        return ExportForm(
            NormalisedSegmenter(model), "images", IMAGE_AXES, ("logits",), {"logits": IMAGE_AXES}
        )
    with torch.no_grad():
        keys = tuple(model([image])[0])
    detector = SingleImageDetector(model, keys)
    return ExportForm(
        detector,
        "image",
        {1: "height", 2: "width"},
        keys,
        {k: {0: "detections"} for k in keys},
        compare_outputs=False,
        detections=lambda outputs, sizes: [dict(zip(keys, map(torch.as_tensor, outputs)))],
        input_help="image: float32 [3,H,W], RGB in [0,1] (one image per call)",
    )


def _hook_form(module: nn.Module) -> ExportForm:
    """A model's own export module (e.g. YOLACT's heads, assembled outside): it takes the
    images batch and names its outputs, their dynamic axes, its assembly and a note."""
    return ExportForm(
        module,
        "images",
        IMAGE_AXES,
        tuple(module.output_names),
        dict(module.dynamic_axes),
        detections=module.detections,
        note=module.note,
    )
