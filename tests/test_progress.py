"""Progress on long work: one shared bar (segcli.progress), shown where a caller asks for it,
with plain lines off a terminal; and the long steps of the commands that use it."""

import io

import pytest
from rich.console import Console

from segcli import progress

from helpers import TINY_FCN, TINY_SHAPES


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=200)


@pytest.fixture
def clock(monkeypatch):
    """perf_counter advancing 2 s per call: past the quiet first second, under 30 s."""
    ticks = iter(float(t) for t in range(0, 100_000, 2))
    monkeypatch.setattr("segcli.progress.time.perf_counter", lambda: next(ticks))


def test_bars_show_only_where_a_caller_asks():
    console = plain_console()
    assert list(progress.tracked(range(3), "work")) == [0, 1, 2]  # no display set: silent
    with progress.shown_on(console):
        with progress.shown_on(None):  # a rank that does not report
            list(progress.tracked(range(3), "hidden"))
        list(progress.tracked(range(3), "shown"))
    assert "hidden" not in console.file.getvalue()


def test_plain_lines_every_30_s_and_at_the_end(clock):
    console = plain_console()
    with progress.shown_on(console):
        list(progress.tracked(range(40), "evaluating"))  # 2 s per clock read: about 160 s
    lines = console.file.getvalue().splitlines()
    assert 4 <= len(lines) <= 7 and lines[-1].startswith("evaluating 40/40")


def test_the_training_bar_also_prints_every_5_percent(clock):
    console, lines = plain_console(), []
    with progress.progress_bar(console, 40, "train", emit=lines.append, lines_always=True) as bar:
        for _ in range(40):
            bar.advance()
    assert len(lines) == 20 and lines[-1].startswith("train 40/40")


def test_nested_bars_print_only_the_30_s_lines(monkeypatch):
    ticks = iter(float(t) for t in range(0, 100_000))  # 1 s per clock read
    monkeypatch.setattr("segcli.progress.time.perf_counter", lambda: next(ticks))
    console = plain_console()
    with progress.shown_on(console), progress.steps("train", 1) as outer:
        list(progress.tracked(range(30), "validation"))
        outer.advance()
    inner = [line for line in console.file.getvalue().splitlines() if "validation" in line]
    assert 1 <= len(inner) <= 4  # one per 30 s of about 90 s, not one per 5%


def test_quick_work_prints_no_lines():
    console = plain_console()
    with progress.shown_on(console):
        list(progress.tracked(range(40), "quick"))
    assert console.file.getvalue() == ""


def test_a_terminal_gets_a_live_bar():
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with progress.shown_on(console):
        list(progress.tracked(range(5), "evaluating"))
    assert "evaluating" in console.file.getvalue() and "5/5" in console.file.getvalue()


def test_callback_opens_its_bar_at_the_first_count(clock):
    console = plain_console()
    with progress.shown_on(console), progress.callback("checking") as report:
        for done in range(1, 21):
            report(done, 20)
    assert console.file.getvalue().splitlines()[-1].startswith("checking 20/20")


def test_eval_over_a_dataset_shows_progress(cli, clock):
    train = cli("train", "fcn8s", *TINY_SHAPES, *TINY_FCN, "--iters", "2", "--val-every", "2")
    assert train.exit_code == 0, train.output
    assert "evaluating" not in train.output  # validation inside training: only 30 s lines
    result = cli("eval", "runs/fcn8s/1/best.pt", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "evaluating 4/4" in result.output  # the 4 val images, one per batch


def test_coco_scoring_and_shapes_ground_truth_bars(clock):
    from segcli.data.coco import ShapesInstances
    from segcli.metrics.coco import coco_eval

    console = plain_console()
    with progress.shown_on(console):
        gt = ShapesInstances("val", size=32, count=4).coco()
        coco_eval(gt, [dict(a, score=1.0) for a in gt.dataset["annotations"]], "box")
    text = console.file.getvalue()
    assert "building COCO ground truth 4/4" in text and "COCO box scoring 3/3" in text


def test_benchmark_shows_warm_up_and_timed_calls(cli, clock):
    result = cli(
        "benchmark", "fcn8s", "--img-size", "32", "--warmup", "2", "--iters", "3", *TINY_FCN
    )
    assert result.exit_code == 0, result.output
    assert "warm-up 2/2" in result.output and "timed calls 3/3" in result.output
