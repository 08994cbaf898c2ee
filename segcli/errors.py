"""User-facing errors: one line naming the file or key and the problem, exit code 2."""

import difflib
import re
from collections.abc import Iterable

ORIGINAL_TRACEBACK = "Original Traceback"


class SegcliError(Exception):
    """A mistake in the user's input (a file, a flag, a dataset); never a bug in segcli.

    DataLoader workers re-raise exceptions as `type(exc)(message_with_traceback)`; the
    constructor keeps only the original one-line message so the CLI can still print one line.
    """

    exit_code = 2

    def __init__(self, message: str):
        if ORIGINAL_TRACEBACK in message:
            last = message.strip().splitlines()[-1]
            message = last.split(": ", 1)[1] if ": " in last else last
        super().__init__(message)


class DataError(SegcliError):
    """A dataset file is missing, corrupt or inconsistent."""


class ConfigError(SegcliError):
    """An unknown recipe, option or `--set` key, or a value of the wrong type."""


def did_you_mean(
    name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.6, list_known: bool = False
) -> str:
    """The end of an error message about an unknown `name`: `; did you mean a, b?` naming up to
    `n` of `known` close to it (difflib's ratio at least `cutoff`); when none is, `; known:
    ...` listing them all if `list_known`, else nothing."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=n, cutoff=cutoff)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; known: {', '.join(known)}" if list_known else ""


def first_line(exc: BaseException, limit: int = 200, with_type: bool = False) -> str:
    """The gist of a library error for a one-line message: its first sentence of its first
    line, without a `[file.cc:123]` source prefix, at most `limit` characters (the type's name
    in front when `with_type`, or alone when there is no message)."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text.splitlines()[0])
    text = text.split(". ")[0][:limit]
    return f"{type(exc).__name__}: {text}" if with_type else text
