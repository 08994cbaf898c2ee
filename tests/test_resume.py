"""Exact resume after a real SIGKILL, and Ctrl-C, on real subprocesses."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from segcli.engine import checkpoint

from helpers import TINY_FCN, TINY_SHAPES

ITERS = 24
TRAIN = [
    "train",
    "fcn8s",
    *TINY_SHAPES,
    *TINY_FCN,
    "--iters",
    str(ITERS),
    "--save-every",
    "1",
    "--set",
    "shapes_train=40",
    "--seed",
    "3",
    "--workers",
    "1",
]


def start(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "segcli", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_iteration(run_dir, iteration: int, proc, timeout: float = 120) -> None:
    """Poll metrics.jsonl until the run logged `iteration` (it writes one line per step)."""
    deadline = time.monotonic() + timeout
    log = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if (
            log.is_file()
            and sum(1 for line in log.read_text().splitlines() if '"kind": "train"' in line)
            >= iteration
        ):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("training did not get there in time")


def weights(path):
    return checkpoint.load(path)["model"]


@pytest.mark.slow
def test_sigkill_at_any_point_then_resume_ends_identical(tmp_path):
    straight = start([*TRAIN, "--out", "straight"], tmp_path)
    assert straight.wait(timeout=300) == 0, straight.communicate()

    victim = start([*TRAIN, "--out", "killed"], tmp_path)
    wait_for_iteration(tmp_path / "killed", 7, victim)
    os.kill(victim.pid, signal.SIGKILL)  # wherever it is: a step, a write, the loader
    victim.wait(timeout=60)
    killed_at = checkpoint.load(tmp_path / "killed" / "last.pt")["progress"]["iteration"]
    assert 1 <= killed_at < ITERS

    resumed = start([*TRAIN, "--out", "killed", "--resume", "auto"], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resumed from killed/last.pt at iteration {killed_at}/{ITERS}" in out

    a, b = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "killed" / "last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    rows = [
        json.loads(line) for line in (tmp_path / "killed/metrics.jsonl").read_text().splitlines()
    ]
    train_iters = [r["iter"] for r in rows if r["kind"] == "train"]
    assert train_iters == list(range(1, ITERS + 1)), "the log repeats or skips iterations"


def test_ctrl_c_writes_last_pt_and_exits_130_with_the_resume_command(tmp_path):
    proc = start([*TRAIN, "--out", "run", "--save-every", "1000", "--iters", "5000"], tmp_path)
    wait_for_iteration(tmp_path / "run", 3, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    payload = checkpoint.load(tmp_path / "run" / "last.pt")
    stopped = payload["progress"]["iteration"]
    assert f"interrupted at iteration {stopped}" in err
    assert "--out run" in err and "--resume auto" in err
