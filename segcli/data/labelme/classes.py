"""Class ids of labelme labels: from a labels.txt, or discovered and sorted.

labelme2voc's labels.txt starts with `__ignore__` (id -1, written as 255) and `_background_`
(id 0), then the classes 1, 2, ... in file order; a plain list of class names works too.
Without a list, the classes are the sorted distinct labels (labelme's tutorial export_json.py).
The numeric-suffix convention: `person1`, `person-2` are instances of `person` when `person`
is a class and the suffixed label is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from segcli.errors import ConfigError

IGNORE = "__ignore__"
BACKGROUND = "_background_"
BACKGROUND_HEADERS = (BACKGROUND, "background")
IGNORE_ID = 255  # labelme paints -1 and casts to uint8
MAX_CLASSES = 255  # ids 0..254; 255 is the ignore value
_SUFFIX = re.compile(r"^(.*?\S)[-_ ]?\d+$")


@dataclass(frozen=True)
class Classes:
    """Class names, background first; `id_of(label)` -> class id, IGNORE_ID, or None."""

    names: tuple[str, ...]

    def id_of(self, label: str) -> int | None:
        if label == IGNORE:
            return IGNORE_ID
        if label == BACKGROUND:
            return 0
        if label in self.names:
            return self.names.index(label)
        stem = suffix_stem(label)
        return self.names.index(stem) if stem in self.names else None

    def names_instance(self, label: str) -> bool:
        """True for `person1`: the suffix itself names one instance."""
        return label not in self.names and suffix_stem(label) in self.names


def suffix_stem(label: str) -> str | None:
    """`person1` -> `person`, `dog-2` -> `dog`; None when there is no numeric suffix."""
    match = _SUFFIX.match(label)
    return match.group(1) if match else None


def read_labels_file(path: Path) -> Classes:
    """labelme's labels.txt (`__ignore__`, `_background_`, classes) or one class per line;
    a UTF-8 byte-order mark (Notepad writes one) is not part of the first name."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the labels file ({exc.strerror or exc})") from None
    while lines and not lines[-1]:
        lines.pop()
    header = 0
    if lines and lines[0] == IGNORE:
        if len(lines) < 2 or lines[1] != BACKGROUND:  # labelme2voc asserts this too
            raise ConfigError(f"{path}: line 2 must be {BACKGROUND} after {IGNORE}")
        header = 1
    body = lines[header:]
    if not body:
        raise ConfigError(f"{path}: no class names in the labels file")
    for number, name in enumerate(body, start=header + 1):
        if not name:
            raise ConfigError(f"{path}: line {number} is empty")
        if name == IGNORE:
            raise ConfigError(f"{path}: line {number}: {IGNORE} belongs on line 1")
    names = body if body[0] in BACKGROUND_HEADERS else [BACKGROUND, *body]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{path}: class {repeated[0]!r} is listed twice")
    return _checked(Classes(tuple(names)), str(path))


def discover_classes(labels: Iterable[str]) -> Classes:
    """Sorted distinct labels after background (ignore excluded); `person1` folds into `person`
    when `person` is itself a label."""
    found = set(labels) - {IGNORE, BACKGROUND}
    kept = sorted(label for label in found if suffix_stem(label) not in found)
    return _checked(Classes((BACKGROUND, *kept)), "the labels found")


def _checked(classes: Classes, source: str) -> Classes:
    if len(classes.names) > MAX_CLASSES:
        raise ConfigError(
            f"{source}: {len(classes.names)} classes; a VOC palette PNG holds at most "
            f"{MAX_CLASSES} (255 is the ignore value)"
        )
    return classes
