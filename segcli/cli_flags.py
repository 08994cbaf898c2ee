"""`segcli train`'s setting flags, made from their declarations in segcli.config.TrainConfig."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated

import typer

from segcli.config import FLAGS, HINTS
from segcli.settings import flag_name, non_optional


def flag_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per flag setting, as Typer reads it: `Annotated[type | None,
    typer.Option(...)] = None`, where None means "not given" (config.resolve_config)."""
    parameters = []
    for key, help_text in FLAGS.items():
        kind = non_optional(HINTS[key])
        name = flag_name(key)
        spelling = f"{name}/--no-{name[2:]}" if kind is bool else name
        option = typer.Option(spelling, help=help_text)
        annotation = Annotated[kind | None, option]
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters.append(inspect.Parameter(key, keyword, default=None, annotation=annotation))
    return parameters


def with_setting_flags(command: Callable) -> Callable:
    """Give `command(ARGUMENTS, *, OPTIONS, **flags)` one option per flag setting, listed
    before its own options; Typer passes their values in `flags`."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    arguments = [p for p in own if p.kind is not p.KEYWORD_ONLY]
    options = [p for p in own if p.kind is p.KEYWORD_ONLY]
    parameters = [*arguments, *flag_parameters(), *options]
    command.__signature__ = signature.replace(parameters=parameters)
    return command
