"""Run folders: runs/<recipe>/<n>/ with config.yaml, last.pt, best.pt, metrics.jsonl, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from segcli import io
from segcli.errors import DataError

RUNS_ROOT = Path("runs")


def new_run_dir(recipe: str, root: Path = RUNS_ROOT) -> Path:
    """The next free runs/<recipe>/<n> (n = 1, 2, ...), created."""
    base = root / recipe
    base.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    for n in range(max(numbers, default=0) + 1, max(numbers, default=0) + 1000):
        try:
            (base / str(n)).mkdir()
            return base / str(n)
        except FileExistsError:  # another process took it
            continue
    raise DataError(f"{base}: cannot create a new run folder")


def run_folders(recipe: str, root: Path = RUNS_ROOT) -> list[Path]:
    """The numbered run folders of `recipe`, in number order."""
    base = root / recipe
    found = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return sorted(found, key=run_number)


def run_number(run_dir: Path) -> int:
    return int(run_dir.name)


def latest_run(recipe: str | None = None, root: Path = RUNS_ROOT, needs: str = "last.pt") -> Path:
    """The most recently modified run (of `recipe`, if given) that holds `needs`."""
    pattern = f"{recipe}/*/{needs}" if recipe else f"*/*/{needs}"
    found = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        where = root / recipe if recipe else root
        raise DataError(f"{where}: no run with {needs} found; train one first or pass a path")
    return found[-1].parent


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    io.write_text(run_dir / "config.yaml", yaml.safe_dump(_plain(config), sort_keys=False))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class MetricsLog:
    """metrics.jsonl: one JSON object per line, `kind` train or val, keyed by iteration."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        io.append_line(self.path, io.json_text(record))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a crash
                continue
        return rows

    def truncate_after(self, iteration: int) -> None:
        """Drop records past `iteration` (a resumed run rewrites them)."""
        rows = [r for r in self.read() if r.get("iter", 0) <= iteration]
        io.write_text(self.path, "".join(io.json_text(r) + "\n" for r in rows))
