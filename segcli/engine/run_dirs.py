"""Where runs live: runs/<recipe>/<n>/, the next free one, the latest, and the rule that a new
run never takes over another's folder. Torch-free: `segcli eval` and `--resume` find runs
before torch is imported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segcli.errors import DataError

if TYPE_CHECKING:
    from segcli.config import TrainConfig

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


def refuse_occupied_out(cfg: TrainConfig) -> None:
    """A new run never writes over another: --out must not hold a last.pt."""
    if cfg.out and (Path(cfg.out) / "last.pt").exists():
        raise DataError(
            f"{cfg.out}: already holds a run (last.pt); continue it with --resume auto or "
            "choose another --out"
        )
