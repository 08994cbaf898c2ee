"""`segcli eval --report report.html`: one self-contained HTML page.

The page holds the scores, the per-class table, the evaluation plots and the worst images
(ground truth, prediction, error overlay), every picture inlined as a base64 data URI, so the
file can be mailed or archived alone: it loads nothing from anywhere. Every text is escaped.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from segcli import io


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Example:
    """One of the worst images: its name, why it ranks low, and titled JPEG panels."""

    name: str
    caption: str
    panels: dict[str, bytes]


@dataclass(frozen=True)
class Report:
    title: str
    facts: list[tuple[str, str]]  # what was evaluated: checkpoint, data, counts
    summary: Table  # the headline scores
    classes: Table  # per-class scores
    plots: dict[str, bytes]  # PNG bytes by file name
    examples: list[Example] = field(default_factory=list)
    ranking: str = ""  # how the examples were chosen
    legend: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # error colours


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
.facts td { text-align: left; }
.plots img { max-width: 100%; margin: 8px 8px 8px 0; border: 1px solid #eee; }
.example { margin: 18px 0; }
.example figure { display: inline-block; margin: 4px 8px 4px 0; vertical-align: top; }
.example img { display: block; max-width: 390px; image-rendering: pixelated; }
figcaption { font-size: 12px; color: #555; }
.swatch { display: inline-block; width: 14px; height: 14px; margin: 0 6px 0 14px;
          vertical-align: -2px; border: 1px solid #888; }
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _table(table: Table, css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(data: bytes, mime: str, alt: str) -> str:
    return f'<img src="{data_uri(data, mime)}" alt="{_e(alt)}">'


def _examples(report: Report) -> str:
    if not report.examples:
        return "<p>No images to show.</p>"
    legend = "".join(
        f'<span class="swatch" style="background: rgb{colour}"></span>{_e(name)}'
        for name, colour in report.legend.items()
    )
    parts = [f"<p>{_e(report.ranking)}</p>", f"<p>Error overlay:{legend}</p>"]
    for example in report.examples:
        figures = "".join(
            f"<figure>{_img(png, 'image/jpeg', title)}<figcaption>{_e(title)}</figcaption></figure>"
            for title, png in example.panels.items()
        )
        parts.append(
            f'<div class="example"><h3>{_e(example.name)}</h3>'
            f"<p>{_e(example.caption)}</p>{figures}</div>"
        )
    return "\n".join(parts)


def render(report: Report) -> str:
    """The report as one HTML document."""
    facts = _table(Table(["", ""], [list(f) for f in report.facts]), "facts")
    plots = "".join(_img(png, "image/png", name) for name, png in report.plots.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(report.title)}</h1>
{facts}
<h2>Scores</h2>
{_table(report.summary)}
<h2>Per class</h2>
{_table(report.classes)}
<h2>Plots</h2>
<div class="plots">{plots}</div>
<h2>Worst images</h2>
{_examples(report)}
</body></html>
"""


def write_report(path, report: Report) -> None:
    io.write_text(path, render(report))
