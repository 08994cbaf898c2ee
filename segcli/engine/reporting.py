"""What a training run prints (rank 0 only): the resolved config, progress, tables, summary."""

from __future__ import annotations

import contextlib
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

LINE_EVERY_S = 30  # a progress line at least this often when output is not a terminal


class Reporter:
    def __init__(self, console: Console, enabled: bool = True):
        self.console, self.enabled = console, enabled

    def info(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, markup=False, highlight=False)

    def warn(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"[yellow]warning:[/] {message}", highlight=False)

    def start(self, cfg, dist, device, precision, total, n_train, run_dir) -> None:
        if not self.enabled:
            return
        table = Table(title=f"segcli train {cfg.recipe}", show_header=False, box=None)
        for key, value in cfg.to_dict().items():
            table.add_row(key, repr(value) if isinstance(value, str) else str(value))
        self.console.print(table)
        if dist.enabled:
            self.info(f"distributed: world size {dist.world_size}, backend {dist.backend}")
        amp = f"AMP {str(precision.dtype).removeprefix('torch.')}" if precision.enabled else "fp32"
        self.info(
            f"device: {device} ({amp}); {n_train} training images; {total} iterations; "
            f"run folder: {run_dir}"
        )

    @contextlib.contextmanager
    def progress(self, total: int, done: int):
        bar = _Bar(self.console, total, done, self.enabled)
        try:
            yield bar
        finally:
            bar.close()

    def validation(self, task, result: dict, class_names, iteration: int, final: bool) -> None:
        """One line per validation; the per-class table for the final one."""
        if not self.enabled:
            return
        title = f"validation at iteration {iteration}"
        if final:
            self.console.print(task.results_table(result, class_names, title))
        else:
            self.info(f"{title}: {task.summary_line(result)}")

    def summary(self, rows: list[tuple[str, str]]) -> None:
        if not self.enabled:
            return
        table = Table(title="summary", show_header=False)
        for key, value in rows:
            table.add_row(key, value)
        self.console.print(table)


def config_table(cfg, origins: dict[str, str]) -> Table:
    """Every setting and model option with its value and where the value comes from."""
    table = Table(title=f"segcli train {cfg.recipe}: resolved config")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    values = cfg.to_dict()
    model = values.pop("model")
    values.pop("recipe")
    for key, value in [*values.items(), *model.items()]:
        name = key if key in values else f"{key} (model)"
        table.add_row(name, repr(value), origins.get(key, "default"))
    return table


class _Bar:
    """A rich progress bar (loss, lr, it/s, ETA); on a non-terminal, a log line now and then."""

    def __init__(self, console: Console, total: int, done: int, enabled: bool):
        self.console, self.total, self.done, self.enabled = console, total, done, enabled
        self.started, self.start_done = time.perf_counter(), done
        self.live = enabled and console.is_terminal
        self.every = max(1, total // 20)
        self.printed = self.started
        self.progress = None
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TextColumn("lr {task.fields[lr]:.2e}"),
                TextColumn("{task.fields[speed]:.2f} it/s"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.progress.add_task(
                "train", total=total, completed=done, loss=0.0, lr=0.0, speed=0.0
            )
            self.progress.start()

    def advance(self, loss: float, lr: float) -> None:
        self.done += 1
        speed = (self.done - self.start_done) / max(time.perf_counter() - self.started, 1e-9)
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done, loss=loss, lr=lr, speed=speed)
        elif self.enabled and self._line_due():
            self.printed = time.perf_counter()
            eta = (self.total - self.done) / max(speed, 1e-9)
            self.console.print(
                f"iter {self.done}/{self.total}  loss {loss:.4f}  lr {lr:.2e}  "
                f"{speed:.2f} it/s  eta {eta:.0f}s",
                highlight=False,
            )

    def _line_due(self) -> bool:
        """Off a terminal: every 5% of the run, at the end, and at least every LINE_EVERY_S."""
        stale = time.perf_counter() - self.printed >= LINE_EVERY_S
        return stale or self.done % self.every == 0 or self.done == self.total

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
