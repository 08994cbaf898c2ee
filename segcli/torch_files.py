"""PyTorch files recognised from their first bytes, without importing torch: a missing or
foreign checkpoint is reported before the seconds that importing torch takes."""

from __future__ import annotations

from pathlib import Path

from segcli.errors import DataError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
PICKLE_MAGIC = b"\x80"  # the legacy format (and plain pickles)


def check_torch_file(path: str | Path, what: str) -> Path:
    """`path` if it exists and looks like a PyTorch file; else one DataError line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        raise DataError(f"{path}: not a {what}: {describe_file(path)}")
    return path


def describe_file(path: Path) -> str:
    """What a file that torch cannot read looks like, from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file"
    if head.startswith(ZIP_MAGIC):
        return "a PyTorch (zip) file that is truncated or damaged"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "an image"
    if head.startswith(PICKLE_MAGIC):
        return "a Python pickle holding objects other than tensors, or damaged"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of another format"
    return "a JSON file" if text.lstrip()[:1] in "{[" else "a text file"
