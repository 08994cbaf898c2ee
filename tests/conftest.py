"""Shared fixtures: small datasets written as real files, and the CLI in-process. What tests
import (tiny settings, data writers, the CLI as a subprocess) is in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli import app

from helpers import write_pair


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
