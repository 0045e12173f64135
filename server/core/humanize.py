"""Numbers, durations and times as people read them, on pages and in notices.

``2.4285714285714284`` reads ``2.43``; ``151 s`` reads ``2m 31s``; a time reads
``2026-11-22 12:00:05 UTC``, without microseconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def number(value: float | None) -> str:
    """Whole numbers as such, others to two decimals (three significant digits below 1)."""
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    if abs(value) >= 1:
        text = f"{value:,.2f}" if abs(value) >= 10_000 else f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def duration(value: timedelta) -> str:
    """``2m 31s``, ``3h 5m``, ``2d 4h``: the two largest units, rounded to the second."""
    seconds = max(0, round(value.total_seconds()))
    if seconds == 0 and value.total_seconds() > 0:
        return f"{round(value.total_seconds() * 1000)}ms"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def moment(at: datetime | None) -> str:
    """``2026-11-22 12:00:05 UTC``; ``-`` for None."""
    if at is None:
        return "-"
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return f"{aware.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
