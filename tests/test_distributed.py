"""Two-process training with torchrun on CPU (gloo): run folder, validation equal to a single
process on the same checkpoint, and a dead rank stopping the others."""

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from segcli.engine import distributed, setup

from helpers import TINY_FCN, TINY_SHAPES, run_segcli

TORCHRUN = [
    sys.executable,
    *"-m torch.distributed.run --standalone --nproc_per_node 2".split(),
    "-m",
    "segcli",
]
# U-Net from its random init predicts a mix of classes, so equal scores are not a coincidence
# of an all-background model; 7 val images split unevenly over the two ranks.
TINY_UNET = (
    "train unet --img-size 32 --batch-size 2 --workers 0 --set base=4 "
    "--set shapes_val=7 --lr 1e-6 --set log_every=1"
).split()


def torchrun(*args, cwd: Path, timeout: float = 240):
    return subprocess.run(
        [*TORCHRUN, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.distributed
def test_two_process_run_validates_like_one_process(tmp_path):
    result = torchrun(
        *TINY_UNET, "--set", "shapes_train=8", "--iters", "2", "--out", "run", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("distributed: world size 2, backend gloo") == 1  # rank 0 only
    run = tmp_path / "run"
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "curves.png"):
        assert (run / name).is_file(), name
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows if r["kind"] == "train"] == [1, 2], "one writer only"
    distributed = [r for r in rows if r["kind"] == "val"][-1]

    single = run_segcli(
        "eval", run / "last.pt", "--json", "single.json", "--workers", "0", cwd=tmp_path
    )
    assert single.returncode == 0, single.stderr
    alone = json.loads((tmp_path / "single.json").read_text())
    for key in ("pa", "mpa", "miou", "fwiou", "per_class_iou", "per_class_acc"):
        assert distributed[key] == alone[key], key
    assert 0 < alone["miou"] < 1 and sum(v > 0 for v in alone["per_class_acc"]) >= 2


@pytest.mark.parametrize(
    ("flags", "exit_code"), [((), 0), (("--lr", "1e30", "--set", "optimizer=adam"), 2)]
)
def test_the_model_is_freed_before_the_process_group_is_destroyed(
    cli, monkeypatch, flags, exit_code
):
    """Finished or stopped by an error: a reference cycle through the trainer once kept the DDP
    model alive past destroy_process_group, and its threads then aborted about one two-process
    run in eight at exit ("terminate called without an active exception")."""
    models, alive_at_shutdown = [], []
    place_model, shutdown = setup.place_model, distributed.shutdown

    def recording_place_model(model, cfg, device):
        models.append(weakref.ref(model))
        return place_model(model, cfg, device)

    def recording_shutdown():
        alive_at_shutdown.append(models[0]() is not None)
        shutdown()

    monkeypatch.setattr(setup, "place_model", recording_place_model)
    monkeypatch.setattr(distributed, "shutdown", recording_shutdown)
    gc.disable()  # what counts is reference counting: the collector runs at no fixed time
    try:
        result = cli("train", "fcn32s", *TINY_SHAPES, *TINY_FCN, "--iters", "2", *flags)
    finally:
        gc.enable()
    assert result.exit_code == exit_code, result.output
    assert alive_at_shutdown == [False]


def rank_pid(rank: int, timeout: float = 120) -> int:
    """The pid of the segcli process torchrun started for `rank` (read from its environment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if (
                f"RANK={rank}".encode() in env
                and b"segcli" in cmd
                and b"TEST_MARK=ddp" in b"".join(env)
            ):
                return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"rank {rank} never started")


@pytest.mark.distributed
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the rank's pid")
def test_a_dead_rank_stops_the_others_with_a_clear_error(tmp_path):
    proc = subprocess.Popen(
        [
            *TORCHRUN,
            *TINY_UNET,
            "--set",
            "shapes_train=400",
            "--iters",
            "100000",
            "--save-every",
            "5",
            "--out",
            "run",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TEST_MARK": "ddp"},
    )
    try:
        victim = rank_pid(1)
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert time.monotonic() - killed < 90
    # rank 0 either sees the broken connection first or torchrun's SIGTERM; both say so
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors, err[-2000:]
    assert ("a peer rank stopped" in errors[0] and "Connection" in errors[0]) or (
        "stopped by SIGTERM (torchrun stops every rank when one fails)" in errors[0]
    )
    # the last finished step is saved now, or was saved already when the error struck mid-step
    saved = "last.pt written at iteration" in errors[0] and "; resume with:" in errors[0]
    kept = "last.pt (iteration" in errors[0] and "is intact; resume with:" in errors[0]
    assert saved or kept, errors[0]
