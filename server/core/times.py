"""Instants that every table and query of ours can hold: the range, and parsing text into it.

Times are stored as ``DateTime64(3, 'UTC')`` (1900 to 2299) but summarised into
``DateTime`` hours and expired by ``toDateTime(timestamp)`` TTLs, whose range is
1970-01-01 to 2106-02-07. An instant outside the narrower range would be accepted
and then break a query or a write later, so it is refused where it enters: a
query parameter, an API body, a config value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2105, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
_RANGE_TEXT = "between 1970-01-01 and 2105-12-31 (UTC)"
_EXPECTED = "expected an RFC 3339 time (2026-11-22T10:00:00Z) or epoch seconds"


def within(value: datetime) -> datetime | None:
    """``value`` in UTC if it lies in [:data:`EARLIEST`, :data:`LATEST`], else None.

    Naive times are UTC. Years far outside are refused before any arithmetic, so
    ``0001-01-01T00:00:00+14:00`` cannot overflow on the way to UTC.
    """
    if not 1969 <= value.year <= 2106:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        utc = aware.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return utc if EARLIEST <= utc <= LATEST else None


def parse_instant(raw: str, name: str) -> datetime:
    """``raw`` (RFC 3339, naive = UTC, or epoch seconds) as an aware UTC datetime.

    Raises ``ValueError`` worded for a 400 answer, naming ``name``: the syntax
    expected, or the range when the time is outside it.
    """
    text = raw.strip()
    try:
        if text.isascii() and text.replace(".", "", 1).isdigit():
            value = datetime.fromtimestamp(float(text), UTC) if len(text) < 30 else None
        else:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{name}: {_EXPECTED}") from None
    inside = within(value) if value is not None else None
    if inside is None:
        raise ValueError(f"{name}: expected a time {_RANGE_TEXT}")
    return inside


def _check(value: datetime) -> datetime:
    inside = within(value)
    if inside is None:
        raise PydanticCustomError("lightbulb", f"expected a time {_RANGE_TEXT}")
    return inside


def _parse(value: object) -> object:
    """Text read as RFC 3339 (``Z`` or an offset; naive = UTC), worded when it is not:
    pydantic's own words ("input is too short") do not say what to write."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError(
            "lightbulb", 'expected an RFC 3339 time like "2026-11-22T10:00:00Z"'
        ) from None


# A config field holding an instant (silence windows): in range, aware, UTC.
Instant = Annotated[datetime, BeforeValidator(_parse), AfterValidator(_check)]
