"""Durations and sizes: parsing config text such as ``"1h30m"`` or ``"256MiB"``.

Each validator raises ``PydanticCustomError("lightbulb", ...)`` with a message
that says what was expected; the config loader appends the offending value.
``Duration``/``WaitDuration``/``ByteSize`` are the pydantic field types every
settings model uses.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("lightbulb", message)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"15s"``, ``"2m"``, ``"1h30m"``, ``"500ms"`` -> timedelta.

    Bare numbers are refused on purpose: ``interval: 30`` could mean seconds or
    minutes, and a monitoring tool that guesses wrong pages nobody.
    """
    if isinstance(value, timedelta):
        return value
    expected = 'expected a duration like "30s", "5m" or "1h30m"'
    if not isinstance(value, str) or not value.strip():
        raise _fail(expected)
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            raise _fail(expected)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise _fail(expected)
    if total <= 0:
        raise _fail("expected a duration greater than zero")
    return timedelta(seconds=total)


def parse_duration_or_zero(value: Any) -> timedelta:
    """Like :func:`parse_duration`, but ``0`` / ``"0s"`` mean "no wait" (``for: 0s``)."""
    if isinstance(value, timedelta):
        return value
    if value == 0 or (isinstance(value, str) and re.fullmatch(r"\s*0+(ms|s|m|h|d|w)?\s*", value)):
        return timedelta(0)
    return parse_duration(value)


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}


def parse_size(value: Any) -> int:
    """``"256MiB"``, ``"1GB"`` or a whole number of bytes -> bytes."""
    if isinstance(value, bool):
        raise _fail('expected a size like "256MiB" or a number of bytes')
    if isinstance(value, int) and value > 0:
        return value
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise _fail('expected a size like "256MiB" or a number of bytes')
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size <= 0:
        raise _fail("expected a size greater than zero")
    return size


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
WaitDuration = Annotated[
    timedelta, BeforeValidator(parse_duration_or_zero), PlainSerializer(format_duration)
]
ByteSize = Annotated[int, BeforeValidator(parse_size)]
