"""A setting's declaration (a TrainConfig field): its type, default, Rule and, for a
`segcli train` flag, the flag's help; and the check of a value against its type."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any

from segcli.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Rule:
    """What values a setting takes beyond its type: at least `low`, above `above`, at most
    `high` (every element of a tuple), or one of `choices`."""

    low: float | None = None
    above: float | None = None
    high: float | None = None
    choices: tuple = ()

    def problem(self, value: Any) -> str | None:
        for item in value if isinstance(value, tuple) else (value,):
            if item is None:
                continue
            if self.choices and item not in self.choices:
                return f"expected one of {', '.join(self.choices)}" + did_you_mean(
                    str(item), self.choices
                )
            if self.low is not None and item < self.low:
                return f"must be at least {self.low:g}"
            if self.above is not None and item <= self.above:
                return f"must be greater than {self.above:g}"
            if self.high is not None and item > self.high:
                return f"must be at most {self.high:g}"
        return None


def setting(default: Any, **rule: Any) -> Any:
    """A TrainConfig field with its Rule, set by `--set`, a config file or a recipe."""
    return field(default=default, metadata={"rule": Rule(**rule)})


def flag(default: Any, help: str, **rule: Any) -> Any:
    """A setting that is also a `segcli train` flag (`--batch-size`; a bool: `--amp/--no-amp`)
    with this `help`."""
    return field(default=default, metadata={"rule": Rule(**rule), "flag_help": help})


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def non_optional(hint: Any) -> Any:
    """`int | None` -> int; any other type as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def coerce(key: str, value: Any, hint: Any, default: Any) -> Any:
    """Check `value` against the declared type; convert where it is unambiguous."""
    if non_optional(hint) is not hint:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return coerce(key, value, non_optional(hint), default)
    if typing.get_origin(hint) is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            value = (value,)
        inner = typing.get_args(hint)[:1] or [type(default[0]) if default else float]
        return tuple(coerce(key, v, inner[0], None) for v in value)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        return str(value)
    elif hint is type(None) or isinstance(value, hint):
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"setting '{key}': expected {name}, got {value!r}")
