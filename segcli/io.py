"""The one way segcli writes files: to a temporary sibling, fsynced, then `os.replace`d.

A crash or a full disk mid-write leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from segcli.errors import DataError


def _temp_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A new hidden file next to `path`, with the permissions a plain open() would give
    (mkstemp makes it 0600, which os.replace would carry over to the result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


@contextlib.contextmanager
def _replacing(path: Path, suffix: str) -> Iterator[tuple[int, str]]:
    """(fd, name) of a temporary file beside `path`, moved onto `path` when the block ends
    without an error and removed when it raises."""
    fd, tmp = _temp_beside(path, suffix)
    try:
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path` atomically."""
    with _replacing(Path(path), ".tmp") as (fd, _), os.fdopen(fd, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], mode: str = "wb") -> None:
    """Call `write(file)` on a temporary file and move it onto `path`."""
    with atomic_open(path, mode) as f:
        write(f)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name beside `path`, with its suffix, for writers that want a name
    rather than a file object (OpenCV's VideoWriter); moved onto `path` on success."""
    path = Path(path)
    with _replacing(path, path.suffix) as (fd, tmp):
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The parsed json file at `path` (a `what`, e.g. "results file"); any failure to read or
    parse it is one DataError line naming the file.

    The bytes go to json.loads, which detects UTF-8, -16 or -32 itself (read_text would
    decode with the locale's encoding)."""
    try:
        return json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path}: cannot read the {what} (not found)") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from None


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, allow_nan=True) + "\n")


def nan_to_null(obj: Any) -> Any:
    """`obj` with every float NaN, in nested dicts and lists, replaced by None (JSON null)."""
    if isinstance(obj, dict):
        return {k: nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [nan_to_null(v) for v in obj]
    return None if isinstance(obj, float) and obj != obj else obj


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def save_image(path: str | os.PathLike, image, **pil_options) -> None:
    """Save a PIL image atomically; the format comes from the suffix."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(Path(path).suffix.lower(), None)
    atomic_write(path, lambda f: image.save(f, format=fmt, **pil_options))


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log (jsonl); a torn last line is the worst a crash can leave."""
    with open(path, "a") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()


class TargetExists(FileExistsError):
    """staged_folder's target appeared while the folder was being built (and not `replace`)."""


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Build a folder in a hidden sibling of `target`, renamed onto `target` on success.

    On any failure the sibling is removed and `target` is untouched. An existing `target` is
    replaced (only with `replace`) after the new folder is complete; without `replace` that is
    TargetExists.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir()  # not mkdtemp: the folder keeps the umask's permissions once in place
    try:
        yield staging
        if target.exists() and not replace:
            raise TargetExists(f"{target}: already exists")
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        if old.exists():
            os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):  # make the renames durable where the OS allows it
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable(folder: str | os.PathLike, reserve_bytes: int = 0) -> str | None:
    """Return a reason why `folder` cannot take new files (None if it can)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test."):
            pass
    except OSError as exc:
        return f"{folder}: cannot write there ({exc.strerror or exc})"
    if reserve_bytes:
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        if free < reserve_bytes:
            need = reserve_bytes / 2**20
            return f"{folder}: only {free / 2**20:.0f} MiB free, need about {need:.0f} MiB"
    return None
