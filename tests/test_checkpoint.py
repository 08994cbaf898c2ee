"""Checkpoints: atomic writes, round trip, exact resume, staged --weights loading."""

import pytest
import torch

from segcli import io
from segcli.engine import checkpoint
from segcli.engine.weights import load_weights, read_weights
from segcli.errors import DataError
from segcli.recipe import get_recipe

from helpers import TINY_FCN, TINY_SHAPES


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.pt"
    io.write_bytes(target, b"good")

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        io.atomic_write(target, broken)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_round_trip_restores_model_and_metadata(cli, in_tmp):
    assert cli("train", "fcn32s", *TINY_SHAPES, *TINY_FCN, "--iters", "1").exit_code == 0
    payload = checkpoint.load(in_tmp / "runs/fcn32s/1/last.pt")
    assert {
        "model",
        "optimizer",
        "scheduler",
        "progress",
        "rng",
        "config",
        "class_names",
        "recipe",
    } <= set(payload)
    assert payload["progress"]["iteration"] == 1
    model, recipe, cfg, names, _ = checkpoint.restore_model(in_tmp / "runs/fcn32s/1/best.pt", "cpu")
    assert recipe.name == "fcn32s" and names[1] == "square" and cfg.iters == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, payload["model"][key])


def test_resume_continues_exactly_where_it_stopped(cli, in_tmp):
    common = [
        *TINY_SHAPES,
        *TINY_FCN,
        "--set",
        "schedule=constant",
        "--seed",
        "5",
        "--set",
        "shapes_train=12",
    ]
    assert cli("train", "fcn8s", *common, "--iters", "7", "--out", "straight").exit_code == 0
    assert cli("train", "fcn8s", *common, "--iters", "4", "--out", "split").exit_code == 0
    result = cli("train", "fcn8s", *common, "--iters", "7", "--out", "split", "--resume", "auto")
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "resuming with iters: 4 -> 7" in result.output
    a = checkpoint.load(in_tmp / "straight/last.pt")["model"]
    b = checkpoint.load(in_tmp / "split/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_checkpoint_is_an_error(cli, in_tmp):
    result = cli("train", "fcn8s", *TINY_SHAPES, "--out", "empty", "--resume", "auto")
    assert result.exit_code == 2
    assert "no checkpoint to resume from" in result.output


def test_fresh_run_refuses_a_folder_that_holds_a_run(cli, in_tmp):
    assert (
        cli("train", "fcn32s", *TINY_SHAPES, *TINY_FCN, "--iters", "1", "--out", "r").exit_code == 0
    )
    result = cli("train", "fcn32s", *TINY_SHAPES, *TINY_FCN, "--iters", "1", "--out", "r")
    assert result.exit_code == 2 and "already holds a run" in result.output


def test_staged_weights_load_matching_layers(tmp_path):
    fcn32 = get_recipe("fcn32s").build_model(4, width=0.125, fc_channels=32)
    path = tmp_path / "w.pt"
    torch.save({"model": fcn32.state_dict()}, path)
    fcn16 = get_recipe("fcn16s").build_model(4, width=0.125, fc_channels=32)
    report = load_weights(fcn16, read_weights(str(path)), str(path))
    loaded, skipped = report.loaded, report.skipped
    assert "fc6.0.weight" in loaded and "score_fr.weight" in loaded
    assert set(skipped) == {
        "score_pool4.weight",
        "score_pool4.bias",
        "upscore2.weight",
        "upscore16.weight",
    }
    assert torch.equal(fcn16.state_dict()["fc7.0.weight"], fcn32.state_dict()["fc7.0.weight"])
    with pytest.raises(DataError, match="not found"):
        read_weights(str(tmp_path / "missing.pt"))
