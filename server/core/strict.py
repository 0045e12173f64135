"""Strict settings models: a value has the type the file wrote, or it is an error.

YAML types unquoted scalars: ``01234567`` is the octal number 342391, ``0x1F`` is 31,
``1e10`` a float, ``yes`` a boolean. Coercing them back into a string setting would
silently store something other than what was typed (a token, a key), and coercing
``"8080"`` or ``true`` into a number hides a mistake. So every settings model derives
from :class:`StrictModel` (pydantic's strict mode): a string setting takes only text
("quote it"), a number only a number, a flag only ``true``/``false``.

The one exception is text from the environment: ``port: ${PORT}`` has no YAML type of
its own, so the loader marks expanded values as :class:`EnvText` and
:meth:`StrictModel._typed_env_text` reads them as the field's number or flag.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from server.core import numbers

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0", ""})


class EnvText(str):
    """A string that came (partly) from ``${VAR}`` expansion; it types as its field wants."""

    __slots__ = ()


def from_env(value: Any) -> bool:
    """Whether ``value`` is text taken from the environment."""
    return isinstance(value, EnvText)


def env_flag(value: EnvText) -> bool | None:
    """``true``/``yes``/``on``/``1`` (any case) as True, their opposites as False, else None."""
    text = value.strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def unwrap(annotation: Any) -> Any:
    """The type behind ``Annotated`` and ``Optional`` (``X | None``); any other union
    and any other annotation as they are."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def _scalar_type(annotation: Any) -> Any:
    """``int``, ``float`` or ``bool`` behind ``Annotated``/``Optional``; else None."""
    kind = unwrap(annotation)
    return kind if kind in (int, float, bool) else None


def _typed(kind: Any, value: EnvText) -> Any:
    text = value.strip()
    if kind is bool:
        flag = env_flag(value)
        return value if flag is None else flag
    if kind is int and (whole := numbers.read_whole(text)) is not None:
        return whole  # 9e1 as in the file; 017 is refused, as in the file
    if kind is float and numbers.is_plain(text):  # float() alone takes "\u0661" and "1_000"
        return float(text)
    return value  # left as text: the field refuses it, naming the variable's setting


class StrictModel(BaseModel):
    """Base of every settings model: unknown keys and mistyped values are errors."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, strict=True, populate_by_name=True
    )

    @model_validator(mode="before")
    @classmethod
    def _typed_env_text(cls, data: Any) -> Any:
        """Read ``${VAR}`` text given to a number or flag field as that type."""
        if not isinstance(data, dict) or not any(isinstance(v, EnvText) for v in data.values()):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            for key in {name, info.alias or name}:
                value = out.get(key)
                kind = _scalar_type(info.annotation)
                if isinstance(value, EnvText) and kind is not None:
                    out[key] = _typed(kind, value)
        return out
