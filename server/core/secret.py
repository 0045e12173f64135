"""A string that never prints.

Passwords and tokens travel through config models, error messages and logs;
wrapping them means a stray ``repr`` or f-string shows ``<secret>`` instead of
the value. Only code that needs the value calls :meth:`Secret.reveal`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def to_secret(value: Any) -> Secret:
    """Pydantic before-validator: accept a string (or an existing Secret)."""
    if isinstance(value, Secret):
        return value
    if value is None:
        return Secret("")
    if isinstance(value, str | int):
        return Secret(str(value))
    raise PydanticCustomError("lightbulb", "expected a string (use ${ENV_VAR} for secrets)")


SecretStr = Annotated[Secret, PlainValidator(to_secret), PlainSerializer(repr)]
