"""Rendering: tables, plots, overlays, the HTML report, benchmark tables.

Imports nothing itself: `segcli eval --gt-json` renders without torch. `view(task.name)` is
what a task shows of its scores (segcli.report.semantic, segcli.report.instance)."""

from __future__ import annotations

import importlib
from types import ModuleType

VIEWS = {"semantic": "segcli.report.semantic", "instance": "segcli.report.instance"}


def view(task: str) -> ModuleType:
    """The view of a task (`semantic`, `instance`): SCORE, PLOTS, class_table, summary_table,
    results_table, summary_line, eval_plots, write_plots and sample_panels."""
    return importlib.import_module(VIEWS[task])


def rich_class_table(classes, title: str):
    """A report.html Table of one row per class as a rich table titled `title`."""
    from rich.table import Table as RichTable

    table = RichTable(title=title)
    for column in classes.headers:
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in classes.rows:
        table.add_row(*row)
    return table


def write_training_plots(score: str, plots: dict[str, bytes], rows: list[dict], run_dir) -> None:
    """curves.png (loss and `score` over the metrics.jsonl `rows`) and `plots` (PNG bytes by
    file name) into `run_dir`."""
    from segcli import io, viz

    viz.plot_curves(rows, run_dir / "curves.png", score)
    for name, png in plots.items():
        io.write_bytes(run_dir / name, png)
