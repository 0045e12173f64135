"""What an incident is: its members (firing periods and FAILED runs), its stable id.

Split from :mod:`server.analytics.incidents` (which derives them from storage and
re-exports these names); see there for how members are found. How they are grouped
into incidents is :func:`group`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from server.alerting.state import alert_id
from server.core.times import within

SEVERITY_ORDER = ("info", "warning", "critical")
_ID = re.compile(r"(\d{8}T\d{6})(\d{3})Z-[0-9a-f]{8}", re.ASCII)  # fullmatch: no "\n" after


@dataclass
class Member:
    """One firing period of one alert (``rule_id`` set) or one FAILED run (``rule_id`` '')."""

    key: str
    rule_id: str
    service_id: str
    severity: str
    start: datetime
    end: datetime | None  # None: still open
    message: str
    caused_by: str = ""

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule_id, self.service_id) if self.rule_id else ""


@dataclass(frozen=True)
class Spell:
    """One service's own part in an incident: from its first member's start to its last
    member's end (None while any of its members is open). A dependant that recovered
    while its cause still fires has an end though the incident has none."""

    service_id: str
    start: datetime
    end: datetime | None

    def duration(self, now: datetime) -> timedelta:
        """Start to end, or to ``now`` while open."""
        return (self.end or now) - self.start


@dataclass
class Incident:
    """A group of members: the first is the cause, the rest were inhibited by it."""

    id: str
    members: list[Member]
    acks: list[dict[str, Any]] = field(default_factory=list)  # {at, who, comment, alert_id}
    notices: list[dict[str, Any]] = field(default_factory=list)  # AlertLog.incident_notices
    note: dict[str, Any] | None = None  # {note, author, updated_at}

    @property
    def root(self) -> Member:
        return self.members[0]

    @property
    def start(self) -> datetime:
        return self.root.start

    @property
    def end(self) -> datetime | None:
        ends = [m.end for m in self.members]
        return None if any(e is None for e in ends) else max(e for e in ends if e is not None)

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(m.service_id for m in self.members))

    def spells(self) -> list[Spell]:
        """Each affected service's own start and end (:class:`Spell`), in the order of
        :attr:`services`."""
        mine: dict[str, list[Member]] = {}
        for m in self.members:
            mine.setdefault(m.service_id, []).append(m)
        out = []
        for sid, members in mine.items():
            ends = [m.end for m in members]
            end = None if None in ends else max(e for e in ends if e is not None)
            out.append(Spell(sid, min(m.start for m in members), end))
        return out

    @property
    def severity(self) -> str:
        known = [m.severity for m in self.members if m.severity in SEVERITY_ORDER]
        return max(known, key=SEVERITY_ORDER.index) if known else self.root.severity

    @property
    def cause(self) -> str:
        root = self.root
        what = f"{root.rule_id} on {root.service_id}" if root.rule_id else root.service_id
        return f"{what}: {root.message}" if root.message else what

    @property
    def acknowledged_by(self) -> list[str]:
        return list(dict.fromkeys(a["who"] for a in self.acks))

    @property
    def sent(self) -> int:
        """Notices delivered about this incident (firing, repeats and resolve, per channel)."""
        return sum(1 for n in self.notices if n["state"] == "delivered")

    def duration(self, now: datetime) -> timedelta:
        """Start to end, or to ``now`` while open."""
        return (self.end or now) - self.start

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """The API's shape: times as RFC 3339 UTC, duration in seconds."""
        end = self.end
        return {
            "id": self.id, "start": self.start.isoformat(), "end": end.isoformat() if end else None,
            "open": end is None, "duration_seconds": round(self.duration(now).total_seconds(), 3),
            "cause": self.cause, "severity": self.severity, "services": self.services,
            "alerts": [m.alert_id for m in self.members if m.rule_id],
            "acknowledged_by": self.acknowledged_by, "notifications_sent": self.sent,
            "notifications_failed": sum(1 for n in self.notices if n["state"] == "failed"),
            "note": self.note["note"] if self.note else None,
            "note_author": self.note["author"] if self.note else None,
            "note_updated_at": self.note["updated_at"].isoformat() if self.note else None,
            "affected": [{"service_id": s.service_id, "start": s.start.isoformat(),
                          "end": s.end.isoformat() if s.end else None, "open": s.end is None}
                         for s in self.spells()],
        }  # fmt: skip


def incident_id(member: Member) -> str:
    """The stable id of the incident ``member`` opens (see the module docstring)."""
    return _incident_id(member.key, member.start)


@functools.lru_cache(maxsize=1 << 16)
def _incident_id(key: str, start: datetime) -> str:
    """Kept per member: a page groups ~1,000 members, each opening an incident until it
    joins one, and the same members come back on every request (~5 us each)."""
    at = start.astimezone(UTC)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{at:%Y%m%dT%H%M%S}{at.microsecond // 1000:03d}Z-{digest}"


def id_start(incident_id_: str) -> datetime | None:
    """The start an id spells, or None when it is not one of ours: not its shape, no such
    date or time (month 13, 30 February, hour 25), or outside what the tables hold
    (:func:`server.core.times.within`), so a lookup never does arithmetic on it."""
    match = _ID.fullmatch(incident_id_)
    if match is None:
        return None
    try:
        start = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return within(start + timedelta(milliseconds=int(match.group(2))))


def key_start(at: datetime) -> str:
    """As the alert log's incident keys spell a start (server.notify.base.incident_key)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def group(members: list[Member]) -> list[Incident]:
    """Members into incidents: an inhibited firing joins the incident its cause
    (``caused_by``) had open when it started — the newest of them when the cause had
    several alerts firing (a long SLO burn and the outage that just began: the
    dependant failed with the outage). Otherwise a firing of a service whose rule-less
    FAILED run is still open when it starts (a rule selecting the service was added
    during the run) joins that run's incident, which keeps its id and note; and a
    rule-less run that starts while the service's alert is firing (its rule left while
    the service failed: :meth:`server.analytics.incident_runs.Runs.failed`) joins the
    alert's, which goes on until the service is back. Everything else opens its own."""
    # a cause firing in the same tick as what it inhibits comes first
    members = sorted(members, key=lambda m: (m.start, bool(m.caused_by), m.key))
    incidents: list[Incident] = []
    home: dict[str, Incident] = {}  # member key -> its incident
    by_service: dict[str, list[Member]] = {}
    for member in members:
        cause = None
        if member.caused_by and member.caused_by != member.service_id:
            cause = _open_at(by_service.get(member.caused_by, ()), member.start)
        if cause is None:  # a rule came during a run, or left while its alert fired
            mine = [m for m in by_service.get(member.service_id, ())
                    if bool(m.rule_id) != bool(member.rule_id)]  # fmt: skip
            cause = _open_at(mine, member.start)
        if cause is not None:
            incident = home[cause.key]
            incident.members.append(member)
        else:
            incident = Incident(incident_id(member), [member])
            incidents.append(incident)
        home[member.key] = incident
        by_service.setdefault(member.service_id, []).append(member)
    return incidents


def _open_at(candidates: Collection[Member], at: datetime) -> Member | None:
    """The newest of ``candidates`` (oldest first) open at ``at``, or None."""
    return next((c for c in reversed(list(candidates))
                 if c.start <= at and (c.end is None or c.end >= at)), None)  # fmt: skip
