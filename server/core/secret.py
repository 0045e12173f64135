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
    """Pydantic validator: accept a string (or an existing Secret), nothing else.

    An unquoted YAML number, flag or null is refused, never turned into text: YAML has
    already changed it (``01234567`` is octal 342391, ``0x1F`` is 31), so the text would
    not be the one typed. The message never quotes the value: it may be a credential.
    """
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(str(value))
    what = "nothing (null)" if value is None else f"a YAML {type(value).__name__}"
    raise PydanticCustomError(
        "lightbulb_secret",
        f"expected a string, got {what} (not shown: a secret); quote it as written, "
        'or take it from the environment: "${ENV_VAR}"',
    )


SecretStr = Annotated[Secret, PlainValidator(to_secret), PlainSerializer(repr)]
