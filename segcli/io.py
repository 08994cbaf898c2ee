"""The one way segcli writes files: to a temporary sibling, fsynced, then `os.replace`d.

A crash or a full disk mid-write leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], mode: str = "wb") -> None:
    """Call `write(file)` on a temporary file and move it onto `path`."""
    with atomic_open(path, mode) as f:
        write(f)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, allow_nan=True) + "\n")


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
