"""No lost work under faults: non-finite losses, unwritable or full folders, failed writes."""

import errno
import os
import re

import torch

from segcli.engine import checkpoint

from helpers import TINY_FCN, TINY_SHAPES

TRAIN = ["train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--save-every", "1", "--set", "optimizer=adam"]


def test_non_finite_loss_stops_naming_the_iteration_and_keeps_last_pt(cli, in_tmp):
    result = cli(*TRAIN, "--iters", "6", "--lr", "1e30", "--out", "run")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    stopped = int(re.search(r"non-finite loss at iteration (\d+)", message)[1])
    assert f"(iteration {stopped - 1}) is intact; resume with: segcli train" in message
    kept = checkpoint.load(in_tmp / "run" / "last.pt")
    assert kept["progress"]["iteration"] == stopped - 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


def test_skip_nonfinite_skips_and_counts_the_steps(cli, in_tmp):
    result = cli(
        *TRAIN, "--iters", "4", "--lr", "1e30", "--out", "run", "--set", "skip_nonfinite=true"
    )
    assert result.exit_code == 0, result.output
    assert "step skipped (1 so far)" in result.output
    kept = checkpoint.load(in_tmp / "run" / "last.pt")
    assert kept["progress"]["iteration"] == 4 and kept["progress"]["skipped_nonfinite"] >= 1


def test_unwritable_output_folder_is_reported_before_training(cli, in_tmp):
    (in_tmp / "a_file").write_text("x")
    result = cli(*TRAIN, "--iters", "2", "--out", "a_file/run")
    assert result.exit_code == 2
    assert "a_file/run: cannot write there" in result.output
    assert "iter 1/" not in result.output


def test_full_disk_is_reported_before_training(cli, in_tmp, monkeypatch):
    real = os.statvfs

    def nearly_full(path):
        stats = real(path)
        return os.statvfs_result(
            (stats.f_bsize, stats.f_frsize, stats.f_blocks, 1, 1, *tuple(stats)[5:])
        )

    monkeypatch.setattr(os, "statvfs", nearly_full)
    result = cli(*TRAIN, "--iters", "2", "--out", "run")
    assert result.exit_code == 2
    assert "MiB free, need about" in " ".join(result.output.split())
    assert not (in_tmp / "run" / "last.pt").exists()


def test_a_failed_checkpoint_write_keeps_the_previous_one(cli, in_tmp, monkeypatch):
    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the third checkpoint: disk full half-way through
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    result = cli(*TRAIN, "--iters", "6", "--val-every", "100", "--out", "run")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "could not write the checkpoint (No space left on device)" in message
    assert "the previous file is intact" in message
    monkeypatch.setattr(torch, "save", real_save)
    kept = checkpoint.load(in_tmp / "run" / "last.pt")
    assert kept["progress"]["iteration"] == 2
    assert not [p for p in (in_tmp / "run").iterdir() if p.name.endswith(".tmp")]
