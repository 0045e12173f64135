"""Time ranges from query parameters: presets (``range=24h``) or ``from``/``to``.

Every page and API answer states the range it used; bad input is a ValueError
worded for a 400 response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from server.config.types import format_duration, parse_duration
from server.core.times import EARLIEST, parse_instant

MAX_RANGE = timedelta(days=400)
MAX_POINTS = 2000
PRESETS = ("1h", "6h", "24h", "7d", "30d")
STEPS = (15, 60, 300, 900, 3600, 6 * 3600, 86400)  # seconds


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    step: int  # seconds per bucket

    @property
    def hourly(self) -> bool:
        """Buckets of an hour or more come from the hourly summary, not raw checks."""
        return self.step >= 3600

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"

    def as_dict(self) -> dict[str, object]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "step": self.step}


def parse_time(raw: str, name: str) -> datetime:
    """A query parameter as an aware UTC time inside the range the tables hold."""
    return parse_instant(raw, name)


def auto_step(span: timedelta, points: int = 240) -> int:
    wanted = span.total_seconds() / points
    return next((s for s in STEPS if s >= wanted), STEPS[-1])


def time_range(
    now: datetime,
    *,
    range_: str | None = None,
    start: str | None = None,
    end: str | None = None,
    step: str | None = None,
    default: str = "24h",
) -> TimeRange:
    try:
        span = parse_duration(range_ or default)
    except ValueError:
        raise ValueError(f'range: expected a duration like "24h" or "7d", got {range_!r}') from None
    stop = parse_time(end, "to") if end else now
    begin = parse_time(start, "from") if start else stop - span
    if begin < EARLIEST:
        raise ValueError(f"from: {begin:%Y-%m-%d} is before 1970-01-01; shorten range or move to")
    if begin >= stop:
        raise ValueError("from must be before to")
    if stop - begin > MAX_RANGE:
        raise ValueError(f"range too long: at most {format_duration(MAX_RANGE)}")
    if step:
        try:
            seconds = int(parse_duration(step).total_seconds())
        except ValueError:
            raise ValueError(f'step: expected a duration like "5m", got {step!r}') from None
        if seconds < 1 or (stop - begin).total_seconds() / seconds > MAX_POINTS:
            raise ValueError(f"step too small: at most {MAX_POINTS} points per series")
    else:
        seconds = auto_step(stop - begin)
    return TimeRange(begin, stop, seconds)
