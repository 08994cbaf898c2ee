"""The Python API over the same drivers as the command line:

    predictor = segcli.load("runs/mask_rcnn/1/best.pt")
    result = predictor.predict("photo.jpg")          # or a PIL image, an HxWx3 uint8 array, a list
    run_dir = segcli.train("fcn8s", data="my_data", iters=2000, lr=1e-3)
    scores = segcli.evaluate(run_dir / "best.pt", metric="miou")

Options are the command line's, as keyword arguments: train's flags and every `--set` setting
or model option (`segcli train RECIPE --show-config` lists them); evaluate's `device`,
`workers`, `tta`, `crf` and `sets` (model options such as {"output_stride": 8}).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from segcli.errors import ConfigError
from segcli.progress import shown_on


@dataclass(frozen=True)
class SemanticResult:
    """labels [H, W] int64 class ids at the image's size; probs [K, H, W] float32."""

    labels: np.ndarray
    probs: np.ndarray
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class InstanceResult:
    """boxes [N, 4] xyxy pixels, scores [N], labels [N] in 1..K (class_names[label]),
    masks [N, H, W] bool at the image's size; highest score first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]


class Predictor:
    """A trained model ready to predict; `.model` is the torch module (eval mode)."""

    def __init__(self, model, recipe, class_names: tuple[str, ...], device):
        self.model, self.recipe, self.class_names, self.device = model, recipe, class_names, device

    def predict(self, images, score_threshold: float = 0.0):
        """One result for one image (a path, a PIL image or an HxWx3 uint8 array), a list of
        results for a list. Instance results keep detections scoring at least
        `score_threshold`."""
        if isinstance(images, list | tuple):
            return [self._one(rgb_array(image), score_threshold) for image in images]
        return self._one(rgb_array(images), score_threshold)

    def _one(self, image: np.ndarray, score_threshold: float):
        if self.recipe.task == "semantic":
            return self._semantic(image)
        from segcli.tasks import for_recipe

        (found,) = for_recipe(self.recipe).predict(self.model, [image], self.device)
        keep = found["scores"] >= score_threshold
        masks = found["masks"][keep]
        return InstanceResult(
            found["boxes"][keep],
            found["scores"][keep],
            found["labels"][keep],
            masks.reshape(len(masks), *image.shape[:2]),
            self.class_names,
        )

    def _semantic(self, image: np.ndarray) -> SemanticResult:
        import torch

        from segcli.data.transforms import eval_transform
        from segcli.ops.tta import plain_logits

        batch = eval_transform()(image=image)["image"][None].to(self.device)
        probs = plain_logits(self.model, batch).softmax(1)[0]
        labels = probs.argmax(0).to(torch.int64)
        return SemanticResult(labels.cpu().numpy(), probs.cpu().numpy(), self.class_names)


def rgb_array(image) -> np.ndarray:
    """An image as RGB uint8 [H, W, 3]: read from a path (EXIF applied), converted from PIL,
    or checked as an array."""
    from PIL import Image

    from segcli.data.images import read_image

    if isinstance(image, str | Path):
        return read_image(image)
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"))
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3:
        if image.dtype != np.uint8:
            raise ConfigError(f"expected a uint8 image array, got {image.dtype}")
        return image
    raise ConfigError(
        f"expected a path, a PIL image or an HxWx3 uint8 array, got {type(image).__name__}"
    )


def load(checkpoint: str | Path, device: str = "auto") -> Predictor:
    """The model of a segcli checkpoint (best.pt or last.pt), in eval mode on `device`."""
    from segcli.engine.checkpoint import restore_model
    from segcli.engine.device import select_device

    model, recipe, _, names, _ = restore_model(checkpoint, select_device(device))
    return Predictor(model, recipe, names, next(model.parameters()).device)


def train(recipe: str, data: str | None = None, **options: Any) -> Path:
    """Train `recipe` (no data: the built-in shapes) and return the run folder."""
    from segcli.commands.train import train as train_run
    from segcli.recipe import get_recipe

    console = Console()
    with shown_on(console):
        return train_run(get_recipe(recipe), {"data": data, **options}, [], console)


def evaluate(
    checkpoint: str | Path,
    data: str | None = None,
    metric: str = "all",
    device: str = "auto",
    workers: int = 2,
    tta: bool = False,
    crf: bool = False,
    sets: dict[str, Any] | None = None,
) -> dict:
    """The scores of a checkpoint on the val split of `data` (default: its own data)."""
    from segcli.commands.evaluate import evaluate_checkpoint
    from segcli.ops.tta import V3_SCALES, build_predictor

    predict = build_predictor(V3_SCALES if tta else None, True, crf)
    settings = [f"{key}={value!r}" for key, value in (sets or {}).items()]
    with shown_on(Console()):
        result, names, _, _ = evaluate_checkpoint(
            Path(checkpoint), data, device, workers, predict, settings, None, metric
        )
    return {**result, "class_names": list(names)}
