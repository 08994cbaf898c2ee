"""The training runtime's single owners: one writer of last.pt (the same payload whoever saves
it), metrics.jsonl read at most once (on resume) with the curves drawn from memory, and the stop
signals kept from DataLoader workers from the moment they start."""

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from segcli import viz
from segcli.data import loader
from segcli.engine import checkpoint, run_folder, trainer
from segcli.errors import first_line

from helpers import TINY_FCN, TINY_SHAPES

TRAIN = ["train", "fcn8s", *TINY_SHAPES, *TINY_FCN]
LAST_PT_KEYS = {
    "format", "model", "optimizer", "scheduler", "scaler", "progress", "rng",
    "recipe", "task", "config", "class_names",
}  # fmt: skip


@pytest.fixture
def last_pt_keys(monkeypatch):
    """The key set of every last.pt written, in order (through the real checkpoint.save)."""
    written, save = [], checkpoint.save

    def recording_save(path, payload):
        if pathlib.Path(path).name == "last.pt":
            written.append({"format", *payload})
        save(path, payload)

    monkeypatch.setattr(checkpoint, "save", recording_save)
    return written


@pytest.fixture
def signals_restored():
    """A stopped run leaves SIGTERM ignored for its short way out; this process goes on."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def test_every_last_pt_has_the_same_keys_whoever_writes_it(
    cli, last_pt_keys, monkeypatch, signals_restored
):
    # interval saves (iterations 1, 2, 3) and the end of the run
    result = cli(*TRAIN, "--iters", "3", "--save-every", "1", "--out", "interval")
    assert result.exit_code == 0, result.output
    assert len(last_pt_keys) == 4
    # Ctrl-C during the second step: a real SIGINT to this process
    step, steps = trainer.optimizer_step, []

    def step_then_ctrl_c(*args):
        step(*args)
        steps.append(1)
        if len(steps) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer, "optimizer_step", step_then_ctrl_c)
    result = cli(*TRAIN, "--iters", "50", "--save-every", "0", "--out", "ctrl_c")
    assert result.exit_code == 130 and "interrupted at iteration 2" in result.output
    assert len(last_pt_keys) == 5
    # after an error (a non-finite loss), at the last good step
    monkeypatch.setattr(trainer, "optimizer_step", step)
    flags = ["--iters", "6", "--lr", "1e30", "--set", "optimizer=adam", "--save-every", "0"]
    result = cli(*TRAIN, *flags, "--out", "error")
    assert result.exit_code == 2 and "error/last.pt written at iteration" in result.output
    assert len(last_pt_keys) == 6
    assert all(keys == LAST_PT_KEYS for keys in last_pt_keys), last_pt_keys
    assert checkpoint.load("ctrl_c/last.pt")["progress"]["iteration"] == 2


def test_resume_reads_metrics_once_and_the_curves_come_from_memory(cli, in_tmp, monkeypatch):
    result = cli(*TRAIN, "--iters", "2", "--set", "log_every=1", "--out", "run")
    assert result.exit_code == 0, result.output
    reads, read_jsonl, open_folder = [], run_folder._read_jsonl, run_folder.RunFolder.open

    def counted_read(path):
        reads.append(path)
        return read_jsonl(path)

    def refuse(*args, **kwargs):
        raise AssertionError("metrics.jsonl read again after the run started")

    def open_then_forbid_reading(*args, **kwargs):
        folder = open_folder(*args, **kwargs)
        monkeypatch.setattr(run_folder, "_read_jsonl", refuse)
        real_read_text = pathlib.Path.read_text

        def read_text(path, *a, **k):
            if path.name == "metrics.jsonl":
                refuse()
            return real_read_text(path, *a, **k)

        monkeypatch.setattr(pathlib.Path, "read_text", read_text)
        return folder

    drawn, plot_curves = [], viz.plot_curves

    def recording_plot(rows, path, score_name):
        drawn.append([(r["kind"], r["iter"]) for r in rows])
        plot_curves(rows, path, score_name)

    monkeypatch.setattr(run_folder, "_read_jsonl", counted_read)
    monkeypatch.setattr(run_folder.RunFolder, "open", open_then_forbid_reading)
    monkeypatch.setattr(viz, "plot_curves", recording_plot)
    result = cli(*TRAIN, "--iters", "3", "--set", "log_every=1", "--out", "run", "--resume", "auto")
    assert result.exit_code == 0, result.output
    assert [p.resolve() for p in reads] == [in_tmp / "run" / "metrics.jsonl"]
    assert (in_tmp / "run" / "curves.png").stat().st_size > 0
    # the records from before the resume (iterations 1, 2) and after it (3), each once
    assert drawn == [[("train", 1), ("train", 2), ("val", 2), ("train", 3), ("val", 3)]]


def test_a_sigterm_reaching_a_starting_dataloader_worker_does_not_kill_it(monkeypatch):
    """A SIGTERM to the whole process group can reach a worker before its initialiser ignores
    it: the worker was started with it blocked, so it is dropped, not fatal."""
    init = loader._init_worker

    def terminated_while_starting(*worker_id):
        os.kill(os.getpid(), signal.SIGTERM)
        init(*worker_id)

    monkeypatch.setattr(loader, "_init_worker", terminated_while_starting)
    batches = loader.eval_loader(list(range(6)), workers=2, batch_size=2)
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4, 5]]


GLOO = "[../gloo/transport/tcp/pair.cc:545] Read error: reset. Check the logs\nmore"


@pytest.mark.parametrize(
    ("exc", "kwargs", "expected"),
    [
        (RuntimeError(GLOO), {}, "Read error: reset"),
        (RuntimeError("No op: foo\nbar"), {"with_type": True}, "RuntimeError: No op: foo"),
        (ValueError(""), {"with_type": True}, "ValueError"),
        (OSError("x" * 300), {"limit": 100}, "x" * 100),
    ],
)  # fmt: skip
def test_first_line_is_the_gist_of_a_library_error(exc, kwargs, expected):
    assert first_line(exc, **kwargs) == expected


def run_python(script: str) -> subprocess.CompletedProcess:
    """`script` in a fresh interpreter: signal handlers and sys.excepthook of its own."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


WORKER_REPORTS = """
import sys
from segcli.data.workers import init_worker
init_worker(0)
for exc in (BrokenPipeError("pipe"), EOFError("eof"), ValueError("a real bug")):
    sys.excepthook(type(exc), exc, None)
"""


def test_a_worker_is_silent_on_a_handover_its_stopped_parent_broke():
    """A SIGTERM can stop the main process while a worker's resource_sharer thread hands it a
    batch; the worker's report of that broken connection would be a stray traceback."""
    stderr = run_python(WORKER_REPORTS).stderr
    assert "a real bug" in stderr
    assert "pipe" not in stderr and "eof" not in stderr


SIGTERMS_HELD = """
import os, signal, time
from segcli.engine import stopping

def sigterm():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # the handler runs meanwhile

done = []
with stopping.StopSignals(print).installed():
    try:
        with stopping.sigterm_held():
            sigterm()
            done.append("block")
    except stopping.Terminated:
        print(done, "Terminated")
    try:
        sigterm()
        print("not raised outside")
    except stopping.Terminated:
        print("raised outside")
    try:  # a block that fails leaves nothing pending for a later one
        with stopping.sigterm_held():
            sigterm()
            raise ValueError
    except ValueError:
        with stopping.sigterm_held():
            pass
        print("nothing pending")
"""


def test_a_sigterm_inside_a_held_block_is_raised_when_it_ends():
    """TensorBoard's writer is left locked by an exception half-way through a write (its close
    then hangs): a SIGTERM waits for the block, then stops the run as it would have."""
    lines = ["['block'] Terminated", "raised outside", "nothing pending"]
    assert run_python(SIGTERMS_HELD).stdout.splitlines() == lines
