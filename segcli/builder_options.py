"""A recipe's model options, read from its build_model's signature without importing it (the
network module imports torch, which takes seconds; `--set` keys are checked before that).

The options of "package.module:name" are the keyword parameters with defaults of what `name`
is in that module's source, `pretrained` left out (every build_model takes it):
- `def name(...)`, or `class name` (its `__init__`);
- `def name(..., **options)` that passes `**options` on: the callee's options too, below its own;
- `name = partial(callee, key=value)`: the callee's options without the bound keys.
A default is a literal, or the name of a literal constant the module assigns or imports.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any

COMMON = ("self", "num_classes", "pretrained")  # build_model's arguments, not options


def builder_options(reference: str) -> dict[str, Any]:
    """The keyword options and their defaults of the "module:name" build_model reference."""
    module, _, name = reference.partition(":")
    return dict(_options(module, name))


@functools.cache
def _options(module: str, name: str) -> tuple[tuple[str, Any], ...]:
    node, module = _definition(module, name)
    if isinstance(node, ast.ClassDef):
        node = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("partial", "functools.partial"):
        bound = {k.arg for k in node.keywords}
        options = _callee_options(node.args[0], module)
        return tuple((k, v) for k, v in options.items() if k not in bound)
    if not isinstance(node, ast.FunctionDef):
        raise ValueError(f"{module}: {name} is not a function, class or partial(...)")
    return tuple(_function_options(node, module).items())


def _function_options(node: ast.FunctionDef, module: str) -> dict[str, Any]:
    args = node.args
    params = [*args.posonlyargs, *args.args]
    named = list(zip(params[len(params) - len(args.defaults) :], args.defaults))
    named += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    own = {a.arg: _value(d, module) for a, d in named if a.arg not in COMMON}
    if args.kwarg is None:
        return own
    call = _forwarding_call(node, args.kwarg.arg)
    passed = {k.arg for k in call.keywords}
    inherited = _callee_options(call.func, module)
    return {**{k: v for k, v in inherited.items() if k not in passed}, **own}


def _forwarding_call(node: ast.FunctionDef, kwarg: str) -> ast.Call:
    """The call in `node`'s body that passes `**kwarg` on."""
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and any(
            k.arg is None and isinstance(k.value, ast.Name) and k.value.id == kwarg
            for k in call.keywords
        ):
            return call
    raise ValueError(f"{node.name}: **{kwarg} is passed to no call, so its options are unknown")


def _callee_options(func: ast.expr, module: str) -> dict[str, Any]:
    if not isinstance(func, ast.Name):
        raise ValueError(f"{module}: options of {ast.unparse(func)} cannot be read")
    return dict(_options(module, func.id))


def _definition(module: str, name: str) -> tuple[ast.AST, str]:
    """What `name` is bound to at the top of `module`: a def, a class, a partial(...) call or
    an assigned value, following `from x import name`; and the module that binds it."""
    for node in _tree(module).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return node, module
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _definition(node.module, alias.name)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                found = _assigned(target, node.value, name)
                if found is not None:
                    return found, module
    raise ValueError(f"{module}: no top-level {name}")


def _assigned(target: ast.expr, value: ast.expr, name: str) -> ast.expr | None:
    """The expression `target = value` binds to `name` (`A, B = 1, 2` too), else None."""
    if isinstance(target, ast.Name):
        return value if target.id == name else None
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
        for part, part_value in zip(target.elts, value.elts):
            if isinstance(part, ast.Name) and part.id == name:
                return part_value
    return None


def _value(node: ast.expr, module: str) -> Any:
    """A default's value: a literal, or a named literal constant of `module`."""
    if isinstance(node, ast.Name):
        node, module = _definition(module, node.id)
        return _value(node, module)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"{module}: the default {ast.unparse(node)} is not a literal") from None


@functools.cache
def _tree(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    if spec is None or not (spec.origin or "").endswith(".py"):
        raise ValueError(f"{module}: no Python source to read options from")
    return ast.parse(Path(spec.origin).read_text(), spec.origin)
