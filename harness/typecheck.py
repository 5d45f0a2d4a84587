"""Values checked against the types their code declares, so that a mistyped setting is refused
in one line naming its key before anything runs.

The declared types are the annotations already in the code: a settings dataclass's fields, a
`_target_`'s parameters (harness/conf/), lightning.Trainer's keyword arguments. The rules are
strict where a lax reading would run something other than what was asked: an integer setting
takes no 10.5 (nor True); a number takes no NaN or infinity; a boolean takes only true or
false (the string "no" is not false, it is a typo). A type the checker does not know (a
callable, a class of the library's own) is accepted as it comes: instantiation checks it.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from harness.errors import InputError

NOT_CHECKED = object()  # the hint of a parameter whose annotation cannot be resolved


def describe(hint: Any) -> str:
    """'an integer', 'a number or null', 'one of 'mean', 'last'', …"""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        # int | float reads as "a finite number": an integer is one.
        described = [describe(a) for a in args if a is not type(None) and not (a is int and float in args)]
        text = " or ".join(dict.fromkeys(d for d in described if d))
        return f"{text} or null" if type(None) in args else text
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
             list: "a list", tuple: "a list", dict: "a mapping"}
    return names.get(origin or hint, "")


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` (as OmegaConf resolves it: None, bool, int, float, str, list, dict) is of
    type `hint`; a hint this module does not know accepts anything."""
    if hint is NOT_CHECKED or hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    base = origin or hint
    if base in (list, tuple, Sequence):
        return isinstance(value, (list, tuple)) and not isinstance(value, str)
    if base in (dict, Mapping):
        return isinstance(value, Mapping)
    return True


def check_value(key: str, value: Any, hint: Any) -> None:
    if not conforms(value, hint):
        raise InputError(f"{key}: expected {describe(hint) or hint}, got {value!r}")


@cache
def parameter_types(target: Callable[..., Any]) -> dict[str, Any]:
    """The annotated type of each parameter of a function or class (its constructor); a name
    whose annotation cannot be resolved maps to NOT_CHECKED."""
    function = target.__init__ if inspect.isclass(target) else target  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target if inspect.isclass(target) and hasattr(target, "__dataclass_fields__")
                                      else function)
    except Exception:  # an annotation naming what only a type checker imports
        hints = {}
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}
    return {name: hints.get(name, NOT_CHECKED) for name in parameters if name not in ("self", "cls")}


def check_fields(settings: Any, prefix: str) -> None:
    """Each field of a settings dataclass against its annotation (called from __post_init__)."""
    for name, hint in parameter_types(type(settings)).items():
        check_value(f"{prefix}.{name}", getattr(settings, name), hint)


def check_arguments(target: Callable[..., Any], arguments: Mapping[str, Any], key: Callable[[str], str]) -> None:
    """Keyword `arguments` of `target` against its annotations; `key(name)` is the setting the
    user would edit (e.g. loss.beta for an interpolated loss.fn.beta). Names the target does
    not take are left to the call itself, which says so."""
    declared = parameter_types(target)
    for name, value in arguments.items():
        if name in declared:
            check_value(key(name), value, declared[name])
