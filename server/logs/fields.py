"""A pushed record's fields read and checked: its level, its time, its texts.

Each check raises :class:`Invalid` with the reason the dead-letter table keeps;
:class:`server.logs.ingest.Ingestor` applies them to a request's records.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from server.core import levels
from server.core.levels import LEVELS
from server.core.text import clip

MAX_FUTURE = timedelta(days=1)
OLDEST = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LAST_NANOS = int((datetime(9999, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) * 10**9
_LEVEL_HINT = f"expected one of {', '.join(LEVELS)}"


class Invalid(ValueError):
    """One record's reason for the dead-letter table."""


def level_of(raw: Any) -> str:
    """Our NDJSON ``level`` (any case or alias) -> the stored level; raises Invalid."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid(f"level: {_LEVEL_HINT}")
    name = _level(raw)
    if name is None:
        raise Invalid(f"level: unknown {clip(raw, 20)!r}; {_LEVEL_HINT}")
    return name


@functools.lru_cache(maxsize=512)
def _level(raw: str) -> str | None:
    return levels.normalise(raw)


def _spellings() -> dict[str, str]:
    """The spellings senders use most (``ERROR``, ``error``, ``Error``, aliases too) ->
    the stored level: one dict lookup a record instead of :func:`level_of`'s checks."""
    out = {}
    for name in (*LEVELS, *levels.ALIASES):
        for spelling in (name, name.lower(), name.title()):
            stored = levels.normalise(spelling)
            if stored is not None:
                out[spelling] = stored
    return out


LEVEL_OF = _spellings()


def timestamp_of(raw: Any, now: datetime, oldest: datetime = OLDEST) -> datetime:
    """RFC 3339 text, or epoch seconds / ms / µs / ns told apart by magnitude.

    Raises Invalid unless the time is between ``oldest`` (2000-01-01, or the start of
    the retention window: an older row would be acknowledged and then dropped by the
    table's TTL) and a day from now (well inside ClickHouse's DateTime64, 1900-2299).
    """
    value: datetime
    if isinstance(raw, str):
        text = raw.strip()
        if text.isascii() and text.replace(".", "", 1).isdigit():
            return timestamp_of(float(text), now, oldest)
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(
                f"timestamp: {clip(raw, 40)!r} is neither RFC 3339 nor epoch time"
            ) from None
        if value.tzinfo is None:
            raise Invalid(f"timestamp: {clip(raw, 40)!r} has no time zone (RFC 3339 needs one)")
        value = value.astimezone(UTC)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        number = float(raw)
        if not math.isfinite(number) or number <= 0:
            raise Invalid(f"timestamp: {raw!r} is not a time")
        for scale in (1, 1e3, 1e6, 1e9):
            if number / scale < 1e11:  # below year 5138: fromtimestamp cannot overflow
                value = datetime.fromtimestamp(number / scale, UTC)
                break
        else:
            raise Invalid(f"timestamp: {raw!r} is not a time")
    elif raw is None:
        raise Invalid("timestamp: required, as RFC 3339 or epoch seconds/ms/ns")
    else:
        raise Invalid("timestamp: expected RFC 3339 text or an epoch number")
    if value < oldest or value > now + MAX_FUTURE:
        raise Invalid(f"timestamp: {value.isoformat()} is out of range {range_text(oldest)}")
    return value


def range_text(oldest: datetime) -> str:
    """The accepted span of record times, as a refusal names it."""
    if oldest == OLDEST:
        return "(2000-01-01 to a day from now)"
    return (f"({oldest.isoformat(timespec='seconds')} to a day from now: older records fall "
            "outside clickhouse.retention_days and would be dropped once stored)")  # fmt: skip


def text_of(obj: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise Invalid(f"{key}: required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{key}: expected a string")
    return value


def context_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise Invalid(f"context: a value cannot be stored: {exc}") from None


def micros(at: datetime) -> int:
    """Whole microseconds since the epoch."""
    return (at - EPOCH) // timedelta(microseconds=1)
