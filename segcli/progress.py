"""The one way segcli shows progress on long work: a rich progress bar on a terminal, plain
lines elsewhere (a pipe, a log file, CI): at least every 30 s and when the work is done, and
for the training run (`lines_always`, also its train.log) every 5% of the work too.

Library code marks its long loops with `tracked` or `steps`; they show on the console that the
caller (a command, the Python API, the reporting rank of a training run) set with `shown_on`,
and on nothing otherwise. A bar opened while another is showing (validation inside training,
COCO scoring inside eval) disappears when done, and off a terminal prints only the 30 s lines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LINE_EVERY_S = 30  # a plain line at least this often when output is not a terminal
QUIET_FIRST_S = 1.0  # work shorter than this prints no plain lines (unless `lines_always`)

_display: ContextVar[Console | None] = ContextVar("segcli_progress_display", default=None)


class ProgressBar:
    """`advance(n, status)` after each unit of work; `status` is a short text (loss, lr).

    `emit(line)` receives the plain lines (default: printed to the console); with
    `lines_always` they are emitted next to a live bar too (the training run's train.log).
    """

    open_bars = 0  # bars showing now, in this process: the ones opened inside are nested

    def __init__(
        self,
        console: Console,
        total: int,
        description: str,
        done: int = 0,
        emit: Callable[[str], None] | None = None,
        lines_always: bool = False,
    ):
        self.console, self.total, self.description = console, total, description
        self.done = self.start_done = done
        self.started = self.printed = time.perf_counter()
        self.nested = ProgressBar.open_bars > 0
        self.every = max(1, total // 20) if lines_always else total
        self.emit = emit or (lambda line: console.print(line, highlight=False, markup=False))
        self.lines = lines_always or not console.is_terminal
        self.lines_always = lines_always
        self.live = None
        if console.is_terminal:
            self.live = Progress(
                TextColumn(f"[bold]{description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=self.nested,
            )
            self.task = self.live.add_task(description, total=total, completed=done, status="")
            self.live.start()
        ProgressBar.open_bars += 1

    def advance(self, count: int = 1, status: str = "") -> None:
        self.done += count
        rate = (self.done - self.start_done) / max(time.perf_counter() - self.started, 1e-9)
        text = f"{status}  {rate:.2f} it/s".strip()
        if self.live is not None:
            self.live.update(self.task, completed=self.done, status=text)
        if self.lines and self._line_due():
            self.printed = time.perf_counter()
            eta = (self.total - self.done) / max(rate, 1e-9)
            self.emit(f"{self.description} {self.done}/{self.total}  {text}  eta {eta:.0f}s")

    def _line_due(self) -> bool:
        now = time.perf_counter()
        if now - self.printed >= LINE_EVERY_S:
            return True
        step_done = self.done % self.every == 0 or self.done == self.total
        quick = now - self.started < QUIET_FIRST_S and not self.lines_always
        return step_done and not self.nested and not quick

    def close(self) -> None:
        ProgressBar.open_bars -= 1
        if self.live is not None:
            self.live.stop()


class SilentBar:
    """A progress bar that shows nothing (no display set, or a rank that does not report)."""

    def advance(self, count: int = 1, status: str = "") -> None:
        pass


@contextlib.contextmanager
def progress_bar(console: Console, total: int, description: str, **options) -> Iterator:
    bar = ProgressBar(console, total, description, **options)
    try:
        yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def shown_on(console: Console | None) -> Iterator[None]:
    """Show the bars of `tracked` and `steps` on `console` (None: nowhere) inside this block."""
    token = _display.set(console)
    try:
        yield
    finally:
        _display.reset(token)


@contextlib.contextmanager
def steps(description: str, total: int) -> Iterator[ProgressBar | SilentBar]:
    """A bar of `total` steps on the display `shown_on` set, or a silent one."""
    console = _display.get()
    if console is None or total <= 0:
        yield SilentBar()
        return
    with progress_bar(console, total, description) as bar:
        yield bar


def tracked(items, description: str, total: int | None = None) -> Iterator:
    """Iterate `items` with a bar on the display `shown_on` set (`total`: default len(items))."""
    with steps(description, len(items) if total is None else total) as bar:
        for item in items:
            yield item
            bar.advance()


@contextlib.contextmanager
def callback(description: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback, for work that reports its own counts: the bar opens
    at the first call."""
    with contextlib.ExitStack() as stack:
        bars: list = []
        reached = [0]

        def report(done: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(steps(description, total)))
            bars[0].advance(done - reached[0])
            reached[0] = done

        yield report
