"""The one way segcli shows progress on long work: a rich progress bar on a terminal, plain
lines elsewhere (a pipe, a log file, CI), every 5% of the work and at least every 30 s."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

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


class ProgressBar:
    """`advance(n, status)` after each unit of work; `status` is a short text (loss, lr).

    `emit(line)` receives the plain lines (default: printed to the console); with
    `lines_always` they are emitted next to a live bar too (the training run's train.log).
    """

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
        self.every = max(1, total // 20)
        self.emit = emit or (lambda line: console.print(line, highlight=False, markup=False))
        self.lines = lines_always or not console.is_terminal
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
                transient=False,
            )
            self.task = self.live.add_task(description, total=total, completed=done, status="")
            self.live.start()

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
        stale = time.perf_counter() - self.printed >= LINE_EVERY_S
        return stale or self.done % self.every == 0 or self.done == self.total

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


@contextlib.contextmanager
def progress_bar(console: Console, total: int, description: str, **options) -> Iterator:
    bar = ProgressBar(console, total, description, **options)
    try:
        yield bar
    finally:
        bar.close()


def track(items, console: Console, description: str, total: int | None = None) -> Iterator:
    """Iterate `items`, advancing a progress bar for each."""
    with progress_bar(console, len(items) if total is None else total, description) as bar:
        for item in items:
            yield item
            bar.advance()
