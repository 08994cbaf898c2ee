"""What a training run reports (rank 0 only): the resolved config, progress, tables, summary.

Everything goes through the `segcli.train` logger: rich's handler shows it on the console
(tables as tables), and from the moment the run folder is known a file handler writes the
same lines, without colour, to `train.log` (what came before is buffered and written first),
ending with the error that stopped the run, if one did.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from segcli import report
from segcli.errors import SegcliError, first_line
from segcli.progress import SilentBar, progress_bar, shown_on

LOG_WIDTH = 120  # columns of the tables in train.log
LOGGER = "segcli.train"


class ConsoleHandler(RichHandler):
    """rich's logging handler, message only; a record carrying a `renderable` (a table) shows
    it as such, while file handlers write its plain-text rendering."""

    def __init__(self, console: Console):
        super().__init__(
            console=console, show_time=False, show_level=False, show_path=False, markup=False
        )
        self.highlighter = None

    def render_message(self, record: logging.LogRecord, message: str):
        return getattr(record, "renderable", None) or message

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


def plain_text(renderable, width: int = LOG_WIDTH) -> str:
    """A rich renderable as plain text (no colour codes)."""
    sink = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    sink.print(renderable)
    return sink.file.getvalue().rstrip()


class Reporter:
    """The training run's log. Handlers live only inside `attached()`, so nothing is left on
    the `segcli.train` logger after the run."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console, self.enabled = console, enabled
        self.logger = logging.getLogger(LOGGER)
        self.buffer: logging.handlers.MemoryHandler | None = None

    @contextlib.contextmanager
    def attached(self):
        """The console handler, and a buffer for train.log until `write_log_to` names it; the
        progress bars of the work inside show on this console (on none for a silent rank)."""
        if not self.enabled:
            with shown_on(None):
                yield self
            return
        if self.buffer is not None:  # attached already
            yield self
            return
        handlers = [ConsoleHandler(self.console), logging.handlers.MemoryHandler(10**6, 100)]
        self.buffer = handlers[1]
        level, propagate = self.logger.level, self.logger.propagate
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # the run's lines are shown once, by these handlers
        for handler in handlers:
            self.logger.addHandler(handler)
        try:
            with shown_on(self.console):
                yield self
        except (Exception, KeyboardInterrupt) as exc:
            self._log_the_end(exc)
            raise
        finally:
            for handler in handlers:
                self.logger.removeHandler(handler)
                handler.close()
            if self.buffer.target is not None:
                self.buffer.target.close()
            self.buffer = None
            self.logger.setLevel(level)
            self.logger.propagate = propagate

    def _log_the_end(self, exc: BaseException) -> None:
        """train.log's last line: why the run stopped, as the CLI prints it on stderr (a bug's
        traceback too), so a log read later, or on another machine, tells."""
        if isinstance(exc, SegcliError):
            message, exc_info = f"error: {exc}", None
        elif isinstance(exc, KeyboardInterrupt):
            message, exc_info = "error: interrupted", None
        else:
            message, exc_info = f"error: {first_line(exc, with_type=True)}", exc
        self.logger.error(message, exc_info=exc_info, extra={"file_only": True})

    def write_log_to(self, path: Path) -> None:
        """From now on (and for what was logged so far) also write `path`, in plain text."""
        if self.buffer is None:
            return
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
        self.buffer.setTarget(handler)
        self.buffer.flush()

    def info(self, message: str) -> None:
        if self.enabled:
            self.logger.info(message)

    def warn(self, message: str) -> None:
        if self.enabled:
            self.logger.warning(f"warning: {message}")

    def table(self, renderable) -> None:
        if self.enabled:
            self.logger.info("\n" + plain_text(renderable), extra={"renderable": renderable})

    def start(self, cfg, dist, device, precision, total, n_train, run_dir) -> None:
        if not self.enabled:
            return
        table = Table(title=f"segcli train {cfg.recipe}", show_header=False, box=None)
        for key, value in cfg.to_dict().items():
            table.add_row(key, repr(value) if isinstance(value, str) else str(value))
        self.table(table)
        if dist.enabled:
            self.info(f"distributed: world size {dist.world_size}, backend {dist.backend}")
        amp = f"AMP {str(precision.dtype).removeprefix('torch.')}" if precision.enabled else "fp32"
        self.info(
            f"device: {device} ({amp}); {n_train} training images; {total} iterations; "
            f"run folder: {run_dir}"
        )

    @contextlib.contextmanager
    def progress(self, total: int, done: int):
        """The training bar; its plain lines go to train.log (and, off a terminal, the console)."""
        if not self.enabled:
            yield SilentBar()
            return

        def emit(line: str) -> None:
            self.logger.info(line, extra={"file_only": self.console.is_terminal})

        with progress_bar(
            self.console, total, "train", done=done, emit=emit, lines_always=True
        ) as bar:
            yield bar

    def validation(self, task, result: dict, class_names, iteration: int, final: bool) -> None:
        """One line per validation; the per-class table for the final one."""
        if not self.enabled:
            return
        title, view = f"validation at iteration {iteration}", report.view(task.name)
        if final:
            self.table(view.results_table(result, class_names, title))
        else:
            self.info(f"{title}: {view.summary_line(result)}")

    def summary(self, rows: list[tuple[str, str]]) -> None:
        if not self.enabled:
            return
        table = Table(title="summary", show_header=False)
        for key, value in rows:
            table.add_row(key, value)
        self.table(table)


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
