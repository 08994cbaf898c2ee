"""`segcli convert-labelme DIR`: a labelme folder to VOC masks and COCO instances.

Two passes over the files, both on all cores: check (parse, decode, verify; nothing written)
and write (paint, save into a staging folder). The staging folder is renamed onto the output
only when complete, so a failure, Ctrl-C or SIGTERM leaves no partial output.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from segcli import io, progress
from segcli.data.labelme import worker
from segcli.data.labelme.classes import read_labels_file
from segcli.data.labelme.coco import coco_document
from segcli.data.labelme.plan import Plan, make_plan
from segcli.data.labelme.worker import Job, check_file, convert_file
from segcli.data.labelme.writers import split_stems, write_folder_files
from segcli.data.workers import init_worker
from segcli.errors import ConfigError, DataError


def convert_labelme(
    folder: Path,
    out: Path | None = None,
    labels: Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    viz: bool = True,
    overwrite: bool = False,
    skip_invalid: bool = False,
    workers: int | None = None,
    console: Console | None = None,
) -> dict:
    """Convert every `folder/*.json` (hidden files excluded, as labelme's glob does); returns
    the summary (also printed as a table)."""
    console = console or Console()
    start = time.perf_counter()
    folder, out = output_paths(folder, out, overwrite)
    labels = Path(labels) if labels else None
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no labelme .json files in this folder")
    given = read_labels_file(labels) if labels else None
    problem = _write_problem(out)
    if problem:
        raise DataError(problem)
    with _sigterm_exits(), _pool(_worker_count(workers, len(files))) as pool:
        checks = _run(pool, check_file, files, console, "checking")
        if overwrite and out.exists():
            _refuse_sources_inside(out, checks)
        plan = make_plan(checks, given, labels.name if labels else "the labels")
        _print_notes(console, plan.notes)
        if plan.problems and not skip_invalid:
            raise DataError(_first_problem(plan))
        if not plan.files:
            raise DataError(f"{folder}: every labelme file was skipped; nothing to convert")
        results, coco = _write(pool, plan, out, overwrite, viz, val_fraction, seed, console)
    _print_notes(console, [f"{r.stem}.json: {note}" for r in results for note in r.notes])
    if plan.problems:
        console.print(skipped_table(plan))
    summary = _summary(files, plan, results, coco, out, time.perf_counter() - start)
    console.print(summary_table(summary))
    return summary


def _write(
    pool, plan: Plan, out: Path, overwrite: bool, viz: bool, val_fraction: float, seed: int, console
):
    """The write pass into a staging folder that replaces `out` once complete."""
    try:
        with io.staged_folder(out, replace=overwrite) as staging:
            jobs = [Job(path, skip, plan.classes, staging, viz) for path, skip in plan.files]
            results = _run(pool, convert_file, jobs, console, "writing")
            train, val = split_stems([r.stem for r in results], val_fraction, seed)
            images = [(r.stem, r.height, r.width, r.annotations) for r in results]
            coco = coco_document(images, plan.classes.names)
            write_folder_files(staging, plan.classes.names, coco, train, val)
    except io.TargetExists:  # another process made it meanwhile
        raise ConfigError(
            f"{out}: appeared while converting; pass --overwrite to replace it"
        ) from None
    except OSError as exc:  # a full disk, a read-only or vanished folder
        raise DataError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return results, coco


@contextlib.contextmanager
def _sigterm_exits():
    """SIGTERM (`kill`, a scheduler's time limit) raises SystemExit(143) in the main thread, so
    the pool stops and the staging folder is removed as on Ctrl-C; the old handler comes back
    afterwards. Python handlers can only be set from the main thread: elsewhere, no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _write_problem(out: Path) -> str | None:
    """Why the output folder cannot be made (checked before the slow check pass), or None."""
    parent = out.parent
    while not parent.exists():  # the folders still to create: their first existing ancestor
        parent = parent.parent
    if not parent.is_dir():
        return f"--out {out}: {parent} is not a folder"
    return io.check_writable(parent)


def _refuse_sources_inside(out: Path, checks) -> None:
    """--overwrite deletes `out`: never when it holds an image the labelme files use."""
    for check in checks:
        if check.image_path and check.image_path.resolve().is_relative_to(out):
            raise ConfigError(
                f"--out {out}: holds {check.image_path}, an image of {check.path.name}; "
                "--overwrite would delete it"
            )


def _print_notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def output_paths(folder: Path, out: Path | None, overwrite: bool) -> tuple[Path, Path]:
    """The source folder and the output (default: DIR_converted beside DIR), both checked."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"{folder}: labelme folder not found")
    out = Path(out).expanduser().resolve() if out else folder.with_name(f"{folder.name}_converted")
    if out == folder or out in folder.parents:
        raise ConfigError(f"--out {out}: would replace the labelme folder itself")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; pass --overwrite to replace it")
    return folder, out


def _first_problem(plan: Plan) -> str:
    more = len(plan.problems) - 1
    tail = f" (and {more} more problem(s))" if more else ""
    return f"{plan.problems[0].line()}{tail}; --skip-invalid converts the rest"


def default_workers() -> int:
    """The cores this process may run on (all of them where the OS cannot tell)."""
    if hasattr(os, "sched_getaffinity"):  # Linux; not macOS or Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _worker_count(workers: int | None, files: int) -> int:
    if workers is None:
        workers = default_workers()
    if workers < 0:
        raise ConfigError(f"--workers {workers}: must be 0 (in this process) or more")
    return min(workers, files)


@contextlib.contextmanager
def _pool(workers: int):
    """Worker processes, or None to work in this process (0 or 1 worker).

    Workers come from a fork server, never forked from this process: a fork inherits the
    state of OpenCV's (or OpenMP's) thread pool without its threads, and the child hangs on
    its first cv2 call once the parent has used cv2 (as a test session or a notebook has).
    """
    if workers <= 1:
        yield None
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([worker.__name__])  # import once, fork cheaply
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run(pool, function, items: list, console: Console, what: str) -> list:
    """`function` over `items`, results in order, with a progress bar. On a failure the
    pending items are cancelled and the running ones awaited, so no worker is still writing
    into the staging folder when it is removed.

    The pool's own shutdown does both: futures cancelled from here are only marked done by
    the pool's thread, and when workers die meanwhile (a SIGTERM sent to the whole process
    group) that thread gives up (Python 3.11 even fails on a cancelled one), so waiting on
    them would never return.
    """
    with progress.shown_on(console), progress.steps(what, len(items)) as bar:
        if pool is None:
            return [_advance(bar, function(item)) for item in items]
        futures = [pool.submit(function, item) for item in items]
        try:
            return [_advance(bar, future.result()) for future in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _advance(bar, result):
    bar.advance()
    return result


def skipped_table(plan: Plan) -> Table:
    table = Table(title=f"skipped: {plan.skipped_files} file(s), {plan.skipped_shapes} shape(s)")
    for column in ("file", "what", "why"):
        table.add_column(column, overflow="fold")
    for problem in plan.problems:
        table.add_row(problem.path.name, problem.where, problem.reason)
    return table


def _summary(files, plan: Plan, results, coco: dict, out: Path, seconds: float) -> dict:
    counts = Counter(a["category_id"] for a in coco["annotations"])
    return {
        "out": str(out),
        "files": len(files),
        "images": len(results),
        "classes": list(plan.classes.names),
        "instances": {name: counts[i] for i, name in enumerate(plan.classes.names) if i},
        "skipped_files": plan.skipped_files,
        "skipped_shapes": plan.skipped_shapes,
        "empty_instances": sum(len(r.empty) for r in results),
        "seconds": seconds,
        "files_per_s": len(files) / seconds if seconds > 0 else float("inf"),
    }


def summary_table(summary: dict) -> Table:
    table = Table(title=f"convert-labelme -> {summary['out']}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in ("files", "images", "skipped_files", "skipped_shapes", "empty_instances"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    for name, count in summary["instances"].items():
        if count:  # a long labels.txt would bury the classes that occur
            table.add_row(f"instances: {name}", str(count))
    table.add_row("time", f"{summary['seconds']:.2f} s")
    table.add_row("files/s", f"{summary['files_per_s']:.1f}")
    return table
