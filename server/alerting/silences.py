"""Silences and maintenance windows: alerts they match are recorded, not sent.

A silence matches on ``service`` (an id, ``stack:<name>`` or a glob) and/or
``rule`` (an id or a glob); an empty matcher matches everything. A one-off
silence has ``start``/``end``; a recurring one opens a window of ``duration``
at every time of its cron expression (APScheduler's crontab parser, in the
silence's time zone).
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from server.core import selectors

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def parse_cron(expression: str, timezone: str) -> CronTrigger:
    """Raises ValueError with APScheduler's reason for a bad expression or zone."""
    return CronTrigger.from_crontab(expression, timezone=timezone)


@dataclass
class Silence:
    id: str
    service: str = ""
    rule: str = ""
    start: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))
    end: datetime = FAR_FUTURE
    cron: CronTrigger | None = None
    duration: timedelta = timedelta(0)
    author: str = ""
    comment: str = ""
    created_at: datetime | None = None
    source: str = "api"  # api | config

    def matches(self, rule_id: str, service_id: str, stack: str) -> bool:
        rule_ok = not self.rule or fnmatch.fnmatchcase(rule_id, self.rule)
        return rule_ok and selectors.matches(self.service, service_id, stack)

    def active(self, now: datetime) -> bool:
        if not self.start <= now < self.end:
            return False
        if self.cron is None:
            return True
        opened = self.cron.get_next_fire_time(None, now - self.duration)
        return opened is not None and opened <= now

    def expired(self, now: datetime) -> bool:
        return now >= self.end

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service or None,
            "rule": self.rule or None,
            "starts_at": None if self.start.year == 1 else self.start.isoformat(),
            "ends_at": None if self.end == FAR_FUTURE else self.end.isoformat(),
            "cron": str(self.cron) if self.cron else None,
            "duration_seconds": self.duration.total_seconds() if self.cron else None,
            "author": self.author,
            "comment": self.comment,
            "source": self.source,
        }


def new_silence_id() -> str:
    return uuid.uuid4().hex[:12]


class Silences:
    """The active set; the engine asks it for every notification it would send."""

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
            if silence.active(now) and silence.matches(rule_id, service_id, stack):
                return silence
        return None

    def purge(self, now: datetime) -> list[Silence]:
        gone = [s for s in self._items.values() if s.expired(now)]
        for silence in gone:
            del self._items[silence.id]
        return gone
