"""What users of Ultralytics, Detectron2 and MMSeg expect: TensorBoard events and train.log in
every run, --version, completion, --config, and the Python API (load / predict / train /
evaluate) without side effects on global state."""

from __future__ import annotations

import io
import logging
import logging.handlers
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import segcli
from segcli.engine.train_log import LOGGER, ConsoleHandler, Reporter

from helpers import TINY_FCN, TINY_RCNN, TINY_SHAPES

TRAIN = ["train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "2", "--val-every", "1"]


def ours(handlers: list) -> list:
    """segcli's handlers (pytest adds its own capture handlers to every logger)."""
    kinds = (ConsoleHandler, logging.FileHandler, logging.handlers.MemoryHandler)
    return [h for h in handlers if isinstance(h, kinds)]


def events(run: Path) -> EventAccumulator:
    (path,) = run.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(path), size_guidance={"images": 0})
    accumulator.Reload()
    return accumulator


def test_a_bug_ends_train_log_with_its_traceback_and_not_the_console(tmp_path):
    console = Console(file=io.StringIO(), width=100)
    with pytest.raises(ZeroDivisionError), Reporter(console).attached() as log:
        log.write_log_to(tmp_path / "train.log")
        log.info("started")
        log.info(str(1 / 0))
    text = (tmp_path / "train.log").read_text()
    assert "started" in text and "ERROR   error: ZeroDivisionError: division by zero" in text
    assert text.rstrip().endswith("ZeroDivisionError: division by zero")  # the traceback's end
    assert "Traceback (most recent call last)" in text
    assert "error" not in console.file.getvalue()  # the CLI prints it there, once


def test_every_run_writes_tensorboard_events_and_a_plain_train_log(cli, in_tmp):
    result = cli(*TRAIN)
    assert result.exit_code == 0, result.output
    run = in_tmp / "runs/fcn8s/1"
    tags = events(run).Tags()
    assert {"train/loss", "train/lr", "train/loss_ce", "val/miou", "val/pa"} <= set(tags["scalars"])
    assert [e.step for e in events(run).Scalars("val/miou")] == [1, 2]
    assert len(tags["images"]) == 4 and all(t.startswith("samples/") for t in tags["images"])
    log = (run / "train.log").read_text()
    assert "\x1b[" not in log  # no colour codes
    for line in ("segcli train fcn8s", "validation at iteration 1: mIoU", "summary", "train 2/2"):
        assert line in log, line
    assert log.index("segcli train fcn8s") < log.index("device: cpu")  # buffered, in order
    assert not ours(logging.getLogger(LOGGER).handlers)  # nothing left behind


def test_tensorboard_can_be_turned_off(cli, in_tmp):
    assert cli(*TRAIN, "--set", "tensorboard=false").exit_code == 0
    assert not list((in_tmp / "runs/fcn8s/1").glob("events.out.*"))


def test_version_and_completion(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert f"segcli {segcli.__version__}" in result.output and "torch 2." in result.output
    assert "--install-completion" in cli("--help").output


@pytest.mark.slow
def test_a_saved_config_starts_a_new_run_below_the_flags(cli, in_tmp):
    assert cli(*TRAIN, "--set", "hflip=false").exit_code == 0
    saved = in_tmp / "runs/fcn8s/1/config.yaml"
    result = cli("train", "fcn8s", "--config", saved, "--iters", "1")
    assert result.exit_code == 0, result.output
    config = (in_tmp / "runs/fcn8s/2/config.yaml").read_text()
    assert "hflip: false" in config and "iters: 1" in config and "width: 0.125" in config
    shown = cli("train", "fcn8s", "--config", saved, "--show-config").output
    assert any("hflip" in line and "--config file" in line for line in shown.splitlines())
    result = cli("train", "unet", "--config", saved)
    assert result.exit_code == 2 and "is a fcn8s config, not unet" in result.output


def test_python_api_semantic(in_tmp, monkeypatch):
    monkeypatch.chdir(in_tmp)
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    run = segcli.train("fcn8s", iters=2, img_size=32, batch_size=2, workers=0,
                       shapes_train=8, shapes_val=4, width=0.125, fc_channels=32)  # fmt: skip
    assert run == Path("runs/fcn8s/1") and (run / "best.pt").is_file()
    # fit leaves no global state behind: random generators, log handlers
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
    assert not ours(logging.getLogger(LOGGER).handlers)

    predictor = segcli.load(run / "best.pt", device="cpu")
    assert isinstance(predictor.model, torch.nn.Module) and not predictor.model.training
    image = np.zeros((30, 41, 3), np.uint8)
    Image.fromarray(image).save("a.png")
    for source in (image, Image.fromarray(image), "a.png", Path("a.png")):
        result = predictor.predict(source)
        assert result.labels.shape == (30, 41) and result.labels.dtype == np.int64
        assert result.probs.shape == (4, 30, 41)
        assert np.allclose(result.probs.sum(0), 1, atol=1e-5)
    assert [r.labels.shape for r in predictor.predict([image, image[:10]])] == [(30, 41), (10, 41)]
    with pytest.raises(segcli.errors.ConfigError, match="uint8"):
        predictor.predict(image.astype(np.float32))
    scores = segcli.evaluate(run / "best.pt", metric="miou", workers=0)
    assert 0 <= scores["miou"] <= 1 and scores["class_names"][0] == "background"


@pytest.mark.slow
def test_python_api_instance(in_tmp, monkeypatch):
    monkeypatch.chdir(in_tmp)
    options = {**TINY_RCNN, "img_size": 64, "batch_size": 2, "workers": 0, "shapes_train": 4}
    run = segcli.train("mask_rcnn", iters=1, shapes_val=2, **options)
    result = segcli.load(run / "last.pt", device="cpu").predict(np.zeros((50, 60, 3), np.uint8))
    n = len(result.scores)
    assert result.boxes.shape == (n, 4) and result.labels.shape == (n,)
    assert result.masks.shape == (n, 50, 60) and result.masks.dtype == bool
    assert result.class_names[0] == "background"


def test_api_options_are_the_cli_checks():
    with pytest.raises(segcli.errors.ConfigError, match="did you mean lr"):
        segcli.train("fcn8s", learning_rate=0.1)
    with pytest.raises(segcli.errors.ConfigError, match="must be at least 1"):
        segcli.train("fcn8s", iters=0)
