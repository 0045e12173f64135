"""Turn pydantic's validation errors into Lightbulb's ``expected X, got Y`` problems."""

from __future__ import annotations

import difflib
import json
import math
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from server.config.errors import ConfigProblem
from server.config.salvage import salvage
from server.config.source import Path, Source, env_names
from server.core import numbers
from server.core.strict import unwrap

_EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string (quote it)",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
}


def describe(value: Any) -> str:
    """How a bad value is quoted back to the user."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return numbers.abbreviated(json.dumps(value))  # 400 digits: the first and last few
    return json.dumps(value) if isinstance(value, bool) else repr(value)


def translate(
    exc: ValidationError | list[ErrorDetails],
    source: Source,
    model: type[BaseModel],
    prefix: Path = (),
) -> list[ConfigProblem]:
    """One problem per pydantic error, at ``prefix`` + the error's location."""
    problems = []
    for error in exc.errors() if isinstance(exc, ValidationError) else exc:
        path: Path = (*prefix, *error["loc"])
        message = _message(error, model, tuple(error["loc"]), _as_typed(error, source, path))
        if error["type"] == "string_type" and path in source.written:
            # YAML typed the unquoted text (01234567 is octal 342391): show it as typed
            typed = source.written[path]
            message = f'expected a string, got {typed} unquoted; quote it: "{typed}"'
        if path in source.raw_text:  # name the variables, never their values
            names = ", ".join(f"${{{n}}}" for n in env_names(source.raw_text[path]))
            message = f"{message} (from {names})" if names else message
        problems.append(ConfigProblem(source.filename, source.line_of(path), path, message))
    return problems


def translate_all(
    exc: ValidationError, value: Any, source: Source, model: type[BaseModel], prefix: Path = ()
) -> list[ConfigProblem]:
    """:func:`translate` plus the cross-field rules ``exc`` hid: those that fail once
    the bad keys of ``value`` (what ``model`` was given) are left out."""
    hidden = salvage(model.model_validate, value, exc)[1]
    return translate(exc, source, model, prefix) + translate(hidden, source, model, prefix)


def _as_typed(error: Any, source: Source, path: Path) -> str | None:
    """A number YAML read from other text (``8_080``, ``0x1F``): quoted as written, with
    what YAML made of it; None for anything else (quoted by :func:`describe`)."""
    value, text = error.get("input"), source.written.get(path)
    if text is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if numbers.is_plain(text):  # as written (1e3, 99.999999999999999), and what a float made of it
        return numbers.as_read(text, value)
    if not numbers.is_finite(value):  # .inf, .nan: "got Infinity" says it already
        return None
    return f"{numbers.abbreviated(text)} (YAML reads it as {describe(value)})"


def _message(error: Any, model: type[BaseModel], loc: Path, shown: str | None = None) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f", got {shown or describe(error.get('input'))}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, allowed, n=1)
        if hint:
            return f'unknown key; did you mean "{hint[0]}"?'
        return "unknown key; expected one of: " + ", ".join(sorted(allowed))
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}{got}"
    if kind == "value_error":
        reason = str(ctx.get("error", error["msg"]))
        scalar = not isinstance(error.get("input"), dict | list)
        return f"{reason}{got}" if scalar else reason
    if kind == "lightbulb":
        return f"{error['msg']}{got}"
    if kind == "lightbulb_secret":  # the value may be a credential: never quoted back
        return str(error["msg"])
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        op = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }
        bound = next(iter(ctx.values()))
        return f"expected a number {op[kind]} {bound}{got}"
    given = error.get("input")
    if kind in _NUMBER and isinstance(given, int) and not isinstance(given, bool):
        return f"expected a number{got}, too large to read as one (a float holds about 1.8e308)"
    if kind in _NUMBER and isinstance(error.get("input"), str):
        fix = _plain_fix(error["input"])
        if fix:
            return f"expected {numbers.EXPECTED}{got}; write {fix}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}{got}"
    return f"{error['msg']}{got}"  # pragma: no cover - a pydantic error type we do not word yet


_NUMBER = frozenset({"int_type", "int_parsing", "float_type", "float_parsing"})


def _plain_fix(text: str) -> str:
    """The plain spelling of a number Python reads but the config does not (``${PORT}``
    set to "8_080" or "\u0668\u0660"), or "" when ``text`` is plain or no number."""
    stripped = text.strip()
    if numbers.is_plain(stripped):
        return ""
    try:
        value = float(stripped)
    except ValueError:
        return ""
    return numbers.abbreviated(numbers.spelled(value)) if math.isfinite(value) else ""


def _allowed_keys(model: type[BaseModel], loc: Path) -> list[str]:
    """Field names (with aliases) of the model that sits at ``loc`` below ``model``."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = unwrap(current)  # slo: SloConfig | None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _step(current: Any, part: str | int) -> Any:
    current = unwrap(current)
    origin = typing.get_origin(current)
    if isinstance(part, int) and origin is list:
        return typing.get_args(current)[0]
    if origin is dict:
        return typing.get_args(current)[1]
    if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
        for name, field in current.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
    return None
