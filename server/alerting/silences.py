"""Silences and maintenance windows: alerts they match are recorded, not sent.

A silence matches on ``service`` (an id, ``stack:<name>`` or a glob) and/or
``rule`` (an id or a glob); an empty matcher matches everything. A one-off
silence has ``start``/``end``; a recurring one opens a window of ``duration``
at every time of its cron expression, read as wall-clock time in the silence's
time zone.

Daylight saving time (the semantics ``lightbulb maintenance`` prints and the
README documents):

- a wall-clock time the zone skips (02:30 on a spring-forward night) opens the
  window at the next minute that exists (03:00, the moment of the change);
- a wall-clock time the zone repeats (02:30 on a fall-back night) opens the
  window once, at its first occurrence;
- a window lasts ``duration`` of elapsed time, whatever the clocks do meanwhile.

APScheduler's cron parser validates expressions; its own DST handling (a
skipped time fires an hour late, a repeated one twice) is not what a
maintenance window wants, so openings are computed here from the wall-clock
times the expression names.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from server.core import selectors
from server.core.humanize import moment

if TYPE_CHECKING:  # server.config checks silences with this module: no import cycle
    from server.config.models import SilenceConfig

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
FAR_PAST = datetime.min.replace(tzinfo=UTC)
_MARGIN = timedelta(hours=2)  # beyond any DST shift; zone changes add their own size
NEVER_YEARS = 8  # a crontab with no opening this long never opens (29 Feb: every 4 years)


class Cron:
    """A crontab read as wall-clock times in ``zone``; see the module doc for DST."""

    def __init__(self, expression: str, timezone: str) -> None:
        """Raises ValueError (or LookupError for an unknown zone) with APScheduler's reason."""
        if not expression.isascii():  # APScheduler's \d reads other scripts' digits
            raise ValueError("write it in ASCII: digits 0-9, names like SUN")
        CronTrigger.from_crontab(expression, timezone=timezone)  # validates both
        self.expression = expression
        self.zone = ZoneInfo(timezone)
        # The same fields over UTC, which has no DST: it names every wall-clock time
        # of the expression exactly once, including those the real zone skips.
        self._wall = CronTrigger.from_crontab(expression, timezone=UTC)

    def __str__(self) -> str:
        return self.expression

    def never_opens(self, since: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> bool:
        """Whether no wall-clock time of the expression exists within ``NEVER_YEARS`` of
        ``since`` (``0 0 30 2 *``); a fixed start keeps config checks reproducible."""
        fire = self._wall.get_next_fire_time(None, since)
        return fire is None or fire - since > timedelta(days=366 * NEVER_YEARS)

    def openings(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Aware UTC instants in ``[start, end)`` at which a window opens, oldest first."""
        margin = _MARGIN + abs(self._offset(start) - self._offset(end))
        wall = (start.astimezone(self.zone).replace(tzinfo=None) - margin).replace(tzinfo=UTC)
        stop = (end.astimezone(self.zone).replace(tzinfo=None) + margin).replace(tzinfo=UTC)
        last: datetime | None = None
        while True:
            fire = self._wall.get_next_fire_time(None, wall)
            if fire is None or fire >= stop:
                return
            at = to_instant(fire.replace(tzinfo=None), self.zone)
            if start <= at < end and at != last:  # skipped times collapse onto one instant
                yield at
                last = at
            wall = fire + timedelta(seconds=1)

    def _offset(self, at: datetime) -> timedelta:
        return at.astimezone(self.zone).utcoffset() or timedelta(0)


def to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time in ``zone`` as an aware UTC instant, by the DST rules above."""
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)  # exists (the first occurrence when repeated)
    # Skipped: the zone jumps over it. fold=1 reads it with the offset from before the
    # jump, which lands before the jump; walk minutes to the first one at or past it.
    at = wall.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(second=0, microsecond=0)
    while at.astimezone(zone).replace(tzinfo=None) < wall:
        at += timedelta(minutes=1)
    return at


def parse_cron(expression: str, timezone: str) -> Cron:
    """Raises ValueError (LookupError for an unknown zone) with the reason."""
    return Cron(expression, timezone)


@dataclass
class Silence:
    id: str
    service: str = ""
    rule: str = ""
    start: datetime = FAR_PAST
    end: datetime = FAR_FUTURE
    cron: Cron | None = None
    duration: timedelta = timedelta(0)
    author: str = ""
    comment: str = ""
    created_at: datetime | None = None
    source: str = "api"  # api | config
    _open: tuple[datetime, datetime] | None = field(default=None, repr=False, compare=False)
    _quiet: tuple[datetime, datetime] | None = field(default=None, repr=False, compare=False)

    def matches(self, rule_id: str, service_id: str, stack: str) -> bool:
        rule_ok = not self.rule or fnmatch.fnmatchcase(rule_id, self.rule)
        return rule_ok and selectors.matches(self.service, service_id, stack)

    def active(self, now: datetime) -> bool:
        if not self.start <= now < self.end:
            return False
        return self.cron is None or self.window_at(now) is not None

    def window_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The recurring window ``[open, close)`` holding ``now``, or None.

        Remembers the last answer, so asking again within the same window (or the
        same quiet stretch before the next one) costs no cron arithmetic.
        """
        if self.cron is None:
            return (self.start, self.end) if self.start <= now < self.end else None
        if self._open and self._open[0] <= now < self._open[1]:
            return self._open
        if self._quiet and self._quiet[0] <= now < self._quiet[1]:
            return None
        tick = timedelta(microseconds=1)
        recent = list(self.cron.openings(now - self.duration + tick, now + tick))
        if recent:  # the newest opening less than one duration before now
            opened = recent[-1]
            self._open = (opened, opened + self.duration)
            return self._open
        horizon = now + timedelta(days=366)
        self._quiet = (now, next(self.cron.openings(now, horizon), horizon))
        return None

    def windows(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Windows that open in ``[start, end)`` (a one-off one if it overlaps), as UTC pairs."""
        if self.cron is None:
            return [(self.start, self.end)] if self.start < end and self.end > start else []
        return [
            (at, at + self.duration)
            for at in self.cron.openings(max(start, self.start), min(end, self.end))
        ]

    @property
    def zone(self) -> ZoneInfo:
        return self.cron.zone if self.cron else ZoneInfo("UTC")

    def expired(self, now: datetime) -> bool:
        return now >= self.end

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service or None,
            "rule": self.rule or None,
            "starts_at": None if self.start == FAR_PAST else self.start.isoformat(),
            "ends_at": None if self.end == FAR_FUTURE else self.end.isoformat(),
            "ends_at_text": None if self.end == FAR_FUTURE else moment(self.end),
            "cron": str(self.cron) if self.cron else None,
            "timezone": str(self.cron.zone) if self.cron else None,
            "duration_seconds": self.duration.total_seconds() if self.cron else None,
            "author": self.author,
            "comment": self.comment,
            "source": self.source,
        }


def from_config(index: int, cfg: SilenceConfig) -> Silence:
    """A YAML silence (already validated by the config checks)."""
    silence = Silence(
        id=cfg.id or f"config-{index}",
        service=cfg.service or "",
        rule=cfg.rule or "",
        author=cfg.author,
        comment=cfg.comment,
        source="config",
    )
    if cfg.start is not None:
        silence.start = _aware(cfg.start)
    if cfg.end is not None:
        silence.end = _aware(cfg.end)
    if cfg.cron:
        silence.cron = Cron(cfg.cron, cfg.timezone)
        silence.duration = cfg.duration or timedelta(hours=1)
    return silence


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def new_silence_id() -> str:
    return uuid.uuid4().hex[:12]


class Silences:
    """The active set; suppression asks it about every notification it would send."""

    def __init__(self, silences: list[Silence] | None = None) -> None:
        self._items: dict[str, Silence] = {s.id: s for s in silences or []}

    def add(self, silence: Silence) -> None:
        self._items[silence.id] = silence

    def get(self, silence_id: str) -> Silence | None:
        return self._items.get(silence_id)

    def remove(self, silence_id: str) -> Silence | None:
        return self._items.pop(silence_id, None)

    def all(self) -> list[Silence]:
        return list(self._items.values())

    def matching(self, rule_id: str, service_id: str, stack: str, now: datetime) -> Silence | None:
        for silence in self._items.values():
            if silence.matches(rule_id, service_id, stack) and silence.active(now):
                return silence
        return None

    def purge(self, now: datetime) -> list[Silence]:
        gone = [s for s in self._items.values() if s.expired(now)]
        for silence in gone:
            del self._items[silence.id]
        return gone
