"""What tests import: tiny settings that make any recipe train in seconds, data writers and
the CLI as a subprocess. Fixtures live in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from segcli.viz import label_image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# Flags that make any semantic recipe train in seconds on the built-in data.
TINY_SHAPES = [
    "--img-size",
    "32",
    "--batch-size",
    "2",
    "--workers",
    "0",
    "--set",
    "shapes_train=8",
    "--set",
    "shapes_val=4",
    "--set",
    "log_every=1",
]
TINY_FCN = ["--set", "width=0.125", "--set", "fc_channels=32"]
# YOLACT options (not flags) at 64 px with the paper's 24..384 px anchors scaled to it, narrow.
TINY_YOLACT = {
    "backbone": "resnet18",
    "size": 64,
    "anchor_scales": (3, 6, 11, 22, 45),
    "fpn_channels": 32,
    "num_prototypes": 8,
}
# Mask R-CNN / MS R-CNN options: the quick profile's ResNet-18-FPN, narrower still.
TINY_RCNN = {
    "backbone": "resnet18",
    "fpn_channels": 16,
    "box_head_channels": 32,
    "mask_head_channels": 16,
}
# Model options of every recipe, on top of its quick profile, for one-step runs in seconds.
TINY_OPTIONS = {
    "fcn32s": {"width": 0.125, "fc_channels": 32},
    "fcn16s": {"width": 0.125, "fc_channels": 32},
    "fcn8s": {"width": 0.125, "fc_channels": 32},
    "unet": {"base": 4},
    "deeplabv1": {"width": 0.125, "fc_channels": 16},
    "deeplabv2": {"width": 0.125},
    "deeplabv3": {"width": 0.125, "channels": 16},
    "deeplabv3plus": {"width": 0.125, "channels": 16, "low_level_channels": 8},
    "deeplabv3plus_r101": {"width": 0.125, "channels": 16, "low_level_channels": 8},
    "mask_rcnn": TINY_RCNN,
    "ms_rcnn": TINY_RCNN,
    "yolact": TINY_YOLACT,
    "yolact_r50": TINY_YOLACT,
}


def settings(options: dict) -> list[str]:
    """`key=value` strings (Python literals) of model or config options."""
    return [f"{k}={v!r}".replace(" ", "") for k, v in options.items()]


def set_flags(options: dict) -> list[str]:
    """The `--set key=value` flags of `options`."""
    return [f"--set={s}" for s in settings(options)]


TINY_YOLACT_FLAGS = set_flags(TINY_YOLACT)


def run_segcli(*args, cwd: Path, timeout: float = 300, env: dict | None = None):
    """The installed console script's module in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "segcli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_pair(
    images: Path,
    masks: Path,
    stem: str,
    rng: np.random.Generator,
    size=(40, 56),
    num_classes: int = 3,
    palette: bool = True,
) -> None:
    """An RGB JPEG whose bright squares are labelled 1..K-1 in a matching PNG mask."""
    h, w = size
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for cls in range(1, num_classes):
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        image[y : y + 12, x : x + 12] = 80 * cls
        mask[y : y + 12, x : x + 12] = cls
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(images / f"{stem}.jpg")
    (label_image(mask) if palette else Image.fromarray(mask, "L")).save(masks / f"{stem}.png")
