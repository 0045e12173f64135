"""Durations and sizes: parsing config text such as ``"1h30m"`` or ``"256MiB"``.

Each validator raises ``PydanticCustomError("lightbulb", ...)`` with a message
that says what was expected; the config loader appends the offending value.
``Duration``/``WaitDuration``/``ByteSize`` are the pydantic field types every
settings model uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, PlainSerializer
from pydantic_core import PydanticCustomError, core_schema


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("lightbulb", message)


# ASCII digits only (Arabic-Indic digits are no duration), each unit once, largest
# first ("1h30m", not "1s1s" or "30m1h"), as people write them.
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_ORDER = ("w", "d", "h", "m", "s", "ms")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Beyond any range a setting allows, and far inside timedelta's own (999,999,999
# days): a bigger figure is refused here rather than overflowing later.
MAX_DURATION = timedelta(days=3650)
# Durations are kept to the millisecond: "0.0000001s" is not a duration.
RESOLUTION = timedelta(milliseconds=1)
_DURATION_EXPECTED = 'expected a duration like "30s", "5m" or "1h30m"'


def _seconds(value: Any) -> float:
    """The seconds ``value`` spells (may be 0, tiny or huge); raises on bad syntax."""
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise _fail(_DURATION_EXPECTED)
    text = value.strip()
    pos, total, last = 0, 0.0, -1
    for match in _DURATION_PART.finditer(text):
        rank = _UNIT_ORDER.index(match.group(2))
        if match.start() != pos or rank <= last:
            raise _fail(_DURATION_EXPECTED)
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos, last = match.end(), rank
    if pos != len(text) or pos == 0:
        raise _fail(_DURATION_EXPECTED)
    return total


def parse_duration(value: Any) -> timedelta:
    """``"15s"``, ``"2m"``, ``"1h30m"``, ``"500ms"`` -> timedelta, 1 ms to 3650 days.

    Bare numbers are refused on purpose: ``interval: 30`` could mean seconds or
    minutes, and a monitoring tool that guesses wrong pages nobody. Raises
    ``PydanticCustomError`` (a ``ValueError``) worded as the fix.
    """
    if isinstance(value, timedelta):
        return value
    total = _seconds(value)
    if total <= 0:
        raise _fail("expected a duration greater than zero")
    if not total <= MAX_DURATION.total_seconds():  # also refuses inf from a 400-digit figure
        raise _fail(f"expected a duration of at most {format_duration(MAX_DURATION)}")
    if total < RESOLUTION.total_seconds():
        raise _fail("expected a duration of at least 1ms")
    return timedelta(milliseconds=round(total * 1000))


def parse_duration_or_zero(value: Any) -> timedelta:
    """Like :func:`parse_duration`, but ``0`` / ``"0s"`` mean "no wait" (``for: 0s``)."""
    if isinstance(value, timedelta):
        return value
    if value == 0 or (
        isinstance(value, str) and re.fullmatch(r"\s*0+(ms|s|m|h|d|w)?\s*", value, re.ASCII)
    ):
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


_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TB": 10**12,
    "TiB": 2**40,
}


MAX_SIZE = 2**40  # 1 TiB: beyond any size a setting allows


def _bytes(value: Any) -> int:
    """The bytes ``value`` spells (may be 0 or huge, capped at ``MAX_SIZE + 1``)."""
    expected = 'expected a size like "256MiB" or a number of bytes'
    if isinstance(value, bool):
        raise _fail(expected)
    if isinstance(value, int):
        return min(value, MAX_SIZE + 1)
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) and len(value) < 100 else None
    if not match:
        raise _fail(expected)
    figure = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    return int(figure) if figure <= MAX_SIZE else MAX_SIZE + 1


def parse_size(value: Any) -> int:
    """``"256MiB"``, ``"1GB"`` or a whole number of bytes -> bytes, 1 byte to 1 TiB.

    Raises ``PydanticCustomError`` (a ``ValueError``) worded as the fix.
    """
    size = _bytes(value)
    if size <= 0:
        raise _fail("expected a size greater than zero")
    if size > MAX_SIZE:
        raise _fail(f"expected a size of at most {format_size(MAX_SIZE)}")
    return size


def format_size(size: int) -> str:
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} byte" if size == 1 else f"{size} bytes"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
WaitDuration = Annotated[
    timedelta, BeforeValidator(parse_duration_or_zero), PlainSerializer(format_duration)
]
ByteSize = Annotated[int, BeforeValidator(parse_size)]


@dataclass(frozen=True)
class DurationRange:
    """Field metadata: a duration setting's allowed range, checked on the text as written.

    ``interval: Annotated[Duration, DurationRange("1s", "7d")]``. A value outside is
    refused at load with ``expected a duration from 1s to 7d``: the floor keeps what
    breaks at run time (a check every millisecond) out of the config, the ceiling
    keeps every figure inside what the code can add up. ``zero`` also allows ``0s``
    (no wait). ``text`` is the range as the README states it.
    """

    low: str
    high: str
    zero: bool = False

    @property
    def text(self) -> str:
        lo, hi = parse_duration(self.low), parse_duration(self.high)
        return f"{'0s or ' if self.zero else ''}{format_duration(lo)} to {format_duration(hi)}"

    def validate(self, value: Any) -> Any:
        if value is None:
            return value  # optional fields: None passes to the type's own check
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
        elif self.zero and value == 0:
            seconds = 0.0
        else:
            seconds = _seconds(value)
        if self.zero and seconds == 0:
            return timedelta(0)
        low, high = parse_duration(self.low), parse_duration(self.high)
        if low.total_seconds() <= seconds <= high.total_seconds():
            return timedelta(milliseconds=round(seconds * 1000))
        raise _fail(f"expected a duration from {self.text}")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(self.validate, handler(source))


@dataclass(frozen=True)
class SizeRange:
    """Field metadata: a size setting's allowed range (see :class:`DurationRange`)."""

    low: str | int
    high: str | int

    @property
    def text(self) -> str:
        return f"{format_size(parse_size(self.low))} to {format_size(parse_size(self.high))}"

    def validate(self, value: Any) -> Any:
        size = _bytes(value)
        if parse_size(self.low) <= size <= parse_size(self.high):
            return size
        raise _fail(f"expected a size from {self.text}")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(self.validate, handler(source))
