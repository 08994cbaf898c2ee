"""What `segcli eval` writes besides --json: the evaluation plots (--plots DIR) and the
self-contained HTML report (--report FILE), checked before the evaluation starts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from segcli import __version__, io
from segcli.errors import ConfigError, DataError


def check_output_paths(plots_dir: Path | None, report: Path | None, worst: int) -> None:
    """Refuse, before any work, outputs that could not be written (nothing is created)."""
    if worst < 0:
        raise ConfigError(f"--report-worst {worst}: must be 0 or more")
    if report is not None:
        if report.is_dir():
            raise ConfigError(f"--report {report}: is a folder; give a file name (report.html)")
        _check_writable(report.parent, report)
    if plots_dir is not None:
        if plots_dir.exists() and not plots_dir.is_dir():
            raise ConfigError(f"--plots {plots_dir}: is a file; give a folder")
        _check_writable(plots_dir, plots_dir)


def _check_writable(folder: Path, named: Path) -> None:
    """The folder, or the nearest ancestor that exists (where it would be made), is writable."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{named}: cannot write there ({existing} is not a writable folder)")


def write_outputs(
    result: dict,
    names,
    view,
    plots_dir: Path | None,
    report: Path | None,
    examples: list,
    facts: list[tuple[str, str]],
) -> None:
    """The task `view`'s evaluation plots into `plots_dir` and the report into `report`."""
    if plots_dir is None and report is None:
        return
    plots = view.eval_plots(result, names)
    if plots_dir is not None:
        for name, png in plots.items():
            io.write_bytes(plots_dir / name, png)
    if report is not None:
        from segcli import viz
        from segcli.report.html import Report, write_report
        from segcli.report.worst import INSTANCE_RANKING, SEMANTIC_RANKING

        stamp = time.strftime("%Y-%m-%d %H:%M")
        page = Report(
            title="segcli evaluation",
            facts=[*facts, ("written", f"{stamp} by segcli {__version__}")],
            summary=view.summary_table(result),
            classes=view.class_table(result, names),
            plots=plots,
            examples=examples,
            ranking=SEMANTIC_RANKING if "miou" in result else INSTANCE_RANKING,
            legend=viz.ERROR_COLOURS,
        )
        write_report(report, page)
