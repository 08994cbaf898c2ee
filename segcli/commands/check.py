"""`segcli check --data PATH`: run the label doctor and print its findings and class table."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.table import Table

from segcli import progress
from segcli.config import parse_field_sets
from segcli.data.doctor import ERROR, NOTE, WARNING, Report, diagnose

EXAMPLES = 3
PIPED_WIDTH = 10_000


# The settings of `segcli train` that change how a dataset is read (`check --set`).
CHECK_SETTINGS = ("binary", "ignore_index", "num_classes", "via_attribute")


def run_check(
    data: str, num_classes: int | None, ignore_index: int, console: Console, sets=()
) -> Report:
    settings = parse_field_sets(sets, CHECK_SETTINGS, "segcli check")
    with progress.shown_on(console), progress.callback("checking") as report_progress:
        report = diagnose(
            data,
            settings.get("num_classes", num_classes),
            settings.get("ignore_index", ignore_index),
            progress=report_progress,
            binary=settings.get("binary", False),
            via_attribute=settings.get("via_attribute"),
        )
    tables = console if console.is_terminal else unfolded(console)
    tables.print(findings_table(report))
    tables.print(class_table(report))
    errors = len(report.errors)
    console.print(
        f"{report.images} images checked: {errors} error(s), "
        f"{len(report.findings) - errors} note(s)",
        highlight=False,
    )
    if report.split_sizes.get("val") == 0:
        console.print(
            "note: the val split is empty; train runs without validation and writes no best.pt",
            highlight=False,
        )
    return report


def unfolded(console: Console) -> Console:
    """The same output off a terminal (a pipe, a log file) with rows at their natural width, so
    no path is folded: rich caps a print's width at the console's, which COLUMNS sets."""
    return Console(file=console.file, width=PIPED_WIDTH, no_color=console.no_color)


def findings_table(report: Report) -> Table:
    """One row per kind of finding: how many files, a few of them, and the fix."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for finding in report.findings:
        groups[(finding.severity, finding.kind)].append(finding)
    table = Table(title="findings" if groups else "findings: none")
    for column in ("severity", "kind", "files", "examples", "problem and fix"):
        table.add_column(column, overflow="fold")
    order = {ERROR: 0, WARNING: 1, NOTE: 2}
    for (severity, kind), items in sorted(groups.items(), key=lambda g: order[g[0][0]]):
        style = "red" if severity == ERROR else "yellow"
        examples = "\n".join(f.path for f in items[:EXAMPLES])
        table.add_row(f"[{style}]{severity}[/]", kind, str(len(items)), examples, items[0].detail)
    return table


def class_table(report: Report) -> Table:
    total = max(int(report.pixels.sum()), 1)
    table = Table(title="class frequency (labelled pixels)")
    for column in ("id", "class", "pixels", "share", "images"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for i, name in enumerate(report.class_names):
        table.add_row(
            str(i),
            name,
            f"{int(report.pixels[i]):,}",
            f"{100 * report.pixels[i] / total:.2f}%",
            str(int(report.image_counts[i])),
        )
    return table
