"""Shared fixtures: small datasets written as real files, and the CLI in-process and as a
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.cli import app
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


def settings(options: dict) -> list[str]:
    """`key=value` strings (Python literals) of model or config options."""
    return [f"{k}={v!r}".replace(" ", "") for k, v in options.items()]


def set_flags(options: dict) -> list[str]:
    """The `--set key=value` flags of `options`."""
    return [f"--set={s}" for s in settings(options)]


TINY_YOLACT_FLAGS = set_flags(TINY_YOLACT)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run the test inside an empty folder (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(in_tmp):
    """Invoke the Typer app in-process: cli("train", "fcn8s", ...) -> Result."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


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


@pytest.fixture
def voc_dir(tmp_path) -> Path:
    """A VOC-style folder with 6 train and 3 val images, 3 classes, palette masks."""
    root = tmp_path / "voc"
    rng = np.random.default_rng(0)
    stems = [f"img{i:02d}" for i in range(9)]
    for stem in stems:
        write_pair(root / "JPEGImages", root / "SegmentationClass", stem, rng)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(stems[:6]) + "\n")
    (sets / "val.txt").write_text("\n".join(stems[6:]) + "\n")
    (root / "class_names.txt").write_text("_background_\nbright\nbrighter")
    return root


# Tests never touch the network: pretrained weights come from a temporary TORCH_HOME.
os.environ["SEGCLI_OFFLINE"] = "1"
