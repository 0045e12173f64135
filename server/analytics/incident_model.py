"""What an incident is: its members (firing periods and FAILED runs), its stable id.

Split from :mod:`server.analytics.incidents` (which derives them from storage and
re-exports these names); see there for how members are found. How they are grouped
into incidents is :func:`group`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from server.alerting.state import alert_id
from server.core.times import within

SEVERITY_ORDER = ("info", "warning", "critical")
FLAP_PREFIX = "flap:"  # member key of a flapping period: flap:<service>@<start>
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
    # the rest of a run handed over from an alert (its rule left while the service
    # failed): when the run of FAILED itself began, before ``start``; None otherwise
    run_began: datetime | None = None

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule_id, self.service_id) if self.rule_id else ""

    @property
    def flap(self) -> bool:
        """A flapping period of the service (:mod:`server.analytics.incident_flaps`): open
        while it flaps, so its incident is ongoing between firings; ``run_began`` is
        where the checks that made it flap begin."""
        return self.key.startswith(FLAP_PREFIX)

    @property
    def reach(self) -> datetime:
        """How far back this member's outage goes: ``run_began`` of a handed-over run
        (the service failed since then; the alert it goes on from ended in between),
        else ``start``."""
        return self.run_began if self.run_began is not None else self.start


@dataclass(frozen=True)
class Spell:
    """One stretch of one service's own part in an incident: members of the service that
    overlap or follow on without a gap (a run handed over from its alert follows on),
    from the first's start to the last's end (None while one is open). A service that
    was back up between two parts (it left and rejoined, or flapped) has a spell for
    each, so neither its up time nor its recovery is hidden. A dependant that recovered
    while its cause still fires has an end though the incident has none."""

    service_id: str
    start: datetime
    end: datetime | None
    firings: int = 1  # firings and runs of FAILED it holds (a flapping period: many)
    flapping: bool = False  # it holds a flapping period: its firings are one stretch
    fired: bool = True  # an alert fired in it (else its ``firings`` are runs of FAILED)

    def duration(self, now: datetime) -> timedelta:
        """Start to end, or to ``now`` while open."""
        return (self.end or now) - self.start

    @property
    def aside(self) -> str:
        """``flapping: 37 firings`` for a stretch that flapped (one line for all of its
        firings, wherever it is told; ``flapping: 37 failures`` when no alert fired, its
        runs of FAILED counted), else ''."""
        if not self.flapping or not self.firings:
            return "flapping" if self.flapping else ""  # failing too briefly to fire
        what = "firing" if self.fired else "failure"
        return f"flapping: {self.firings} {what}{'' if self.firings == 1 else 's'}"


@dataclass
class Incident:
    """A group of members: the first is the cause, the rest were inhibited by it."""

    id: str
    members: list[Member]
    acks: list[dict[str, Any]] = field(default_factory=list)  # {at, who, comment, alert_id}
    notices: list[dict[str, Any]] = field(default_factory=list)  # AlertLog.incident_notices
    note: dict[str, Any] | None = None  # {note, author, updated_at}
    # notes saved under the ids of incidents merged into this one, older, newest first
    earlier_notes: list[dict[str, Any]] = field(default_factory=list)
    # when its note was last saved, a clearing included (``note`` None then): news on the
    # status page and in its feed alike
    note_saved_at: datetime | None = None

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
        """Each affected service's stretches (:class:`Spell`), services in the order of
        :attr:`services`, each service's oldest first. Members within one of the service's
        flapping periods (a ``flap`` member, from where its checks began flapping to its
        end) are one stretch: a flapping service is not back up between two firings."""
        mine: dict[str, list[Member]] = {}
        for m in self.members:
            mine.setdefault(m.service_id, []).append(m)
        out = []
        for sid, members in mine.items():
            flaps = [(m.reach, m.end) for m in members if m.flap]
            first, *rest = sorted(members, key=lambda m: m.start)
            start, end, count, flapping = first.start, first.end, int(not first.flap), first.flap
            fired = bool(first.rule_id)
            for m in rest:
                held = any(a <= end and (b is None or m.start <= b)
                           for a, b in flaps) if end is not None else True  # fmt: skip
                if end is not None and m.reach > end and not held:  # back up in between
                    out.append(Spell(sid, start, end, count, flapping, fired))
                    start, end, count, flapping, fired = m.start, m.end, 0, False, False
                elif end is not None:
                    end = None if m.end is None else max(end, m.end)
                count, flapping = count + int(not m.flap), flapping or m.flap
                fired = fired or bool(m.rule_id)
            out.append(Spell(sid, start, end, count, flapping, fired))
        return out

    @property
    def failing(self) -> set[str]:
        """The services with a member still open: in the incident now."""
        return {m.service_id for m in self.members if m.end is None}

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
            "alerts": list(dict.fromkeys(m.alert_id for m in self.members if m.rule_id)),
            "acknowledged_by": self.acknowledged_by, "notifications_sent": self.sent,
            "notifications_failed": sum(1 for n in self.notices if n["state"] == "failed"),
            "note": self.note["note"] if self.note else None,
            "note_author": self.note["author"] if self.note else None,
            "note_updated_at": self.note["updated_at"].isoformat() if self.note else None,
            "earlier_notes": [{"note": n["note"], "author": n["author"],
                               "updated_at": n["updated_at"].isoformat()}
                              for n in self.earlier_notes],
            # per spell as the page tells it: ``aside`` is its words ("flapping: 12 firings")
            "affected": [{"service_id": s.service_id, "start": s.start.isoformat(),
                          "end": s.end.isoformat() if s.end else None, "open": s.end is None,
                          "flapping": s.flapping, "firings": s.firings, "fired": s.fired,
                          "aside": s.aside}
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


Flaps = Mapping[str, list[tuple[datetime, datetime | None]]]  # service -> [(from, to|None)]


def group(members: list[Member], flaps: Flaps | None = None,
          burns: Collection[str] = ()) -> list[Incident]:  # fmt: skip
    """Members into incidents. A member joins, the first that applies:

    1. the incident its own service is in: the newest member of the service open when
       it starts, or at any time since its ``reach`` (when the service's run began, of
       FAILED or of checks not OK: :meth:`server.analytics.incident_runs.Runs.
       reaching`, for a firing or run that goes on from another: a rule renamed,
       removed, disabled or added while the service failed, the service disabled and enabled
       again still failing; the start of a flapping period's checks), so a service is
       in one ongoing incident, whichever rules watched it. Except: an outage (a run,
       or a firing of a rule not in ``burns``: ``slo_burn``,
       :func:`server.alerting.rules.burn_rules`) never joins through a burn's firing,
       which outlasts the outage by up to its window and would chain the next outage
       to it; a burn's firing joins only a run or another burn (a long SLO burn is not
       the outage that began during it). A burn's firing in an outage's incident ends
       with the outage at the latest (:func:`_burns_end_with_the_outage`).
    2. the incident its cause (``caused_by``, named by inhibition) had open when it
       started: the newest of them when the cause had several alerts firing (a long
       SLO burn and the outage that just began: the dependant failed with the outage).
    3. the incident of the previous firing of the same alert (or run of FAILED) when both
       its end and this start fall in one of the service's flapping periods (``flaps``:
       from when it was declared, less the span of checks that made it flap, to its end,
       or None while it flaps: :mod:`server.analytics.incident_flaps`): a flapping
       service's firings are one incident, each a member of it (with its own notices and
       acks), as is the flapping period itself, which keeps it open while it flaps.

    Everything else opens its own."""
    # a cause firing in the same tick as what it inhibits comes first
    members = sorted(members, key=lambda m: (m.start, bool(m.caused_by), m.key))
    incidents: list[Incident] = []
    home: dict[str, Incident] = {}  # member key -> its incident
    by_service: dict[str, list[Member]] = {}
    for member in members:
        mine = by_service.get(member.service_id, [])
        burn = member.rule_id in burns
        same = [m for m in mine if (m.rule_id in burns) == burn or (burn and not m.rule_id)]
        cause = _open_at(same, member.start, member.reach)
        if cause is None and member.caused_by and member.caused_by != member.service_id:
            cause = _open_at(by_service.get(member.caused_by, ()), member.start)
        if cause is None and flaps and not member.flap:
            cause = _refired(mine, member, flaps.get(member.service_id, ()))
        if cause is not None:
            incident = home[cause.key]
            incident.members.append(member)
        else:
            incident = Incident(incident_id(member), [member])
            incidents.append(incident)
        home[member.key] = incident
        mine.append(member)
        by_service[member.service_id] = mine
    for incident in incidents:
        _burns_end_with_the_outage(incident, burns)
    return incidents


def _burns_end_with_the_outage(incident: Incident, burns: Collection[str]) -> None:
    """In an outage's incident (its first member no burn), the burns' firings that joined
    it end with the outage at the latest: a burn fires on for up to its window after the
    service is back (it is told as a burn on the alerts), and would keep the outage
    ongoing, and its service in two open incidents when it fails again."""
    if not burns or incident.root.rule_id in burns:
        return
    ends = [m.end for m in incident.members if m.rule_id not in burns]
    if any(e is None for e in ends):
        return
    over = max(e for e in ends if e is not None)
    incident.members = [
        replace(m, end=max(over, m.start)) if m.rule_id in burns and (m.end is None or m.end > over)
        else m
        for m in incident.members
    ]  # fmt: skip


def flap_reach(member: Member, flaps: Flaps) -> datetime:
    """How far back what may join ``member`` starts (:func:`group`): its own reach, or the
    start of the flapping period it began in (the earlier firings of that period)."""
    held = [a for a, b in flaps.get(member.service_id, ())
            if a <= member.start and (b is None or member.start <= b)]  # fmt: skip
    return min([member.reach, *held])


def _open_at(candidates: Collection[Member], at: datetime,
             reach: datetime | None = None) -> Member | None:  # fmt: skip
    """The newest of ``candidates`` (oldest first) begun by ``at`` and open at ``at``, or
    at any time since ``reach`` when given."""
    since = at if reach is None else reach
    return next((c for c in reversed(list(candidates))
                 if c.start <= at and (c.end is None or c.end >= since)), None)  # fmt: skip


def _refired(candidates: list[Member], member: Member,
             periods: Collection[tuple[datetime, datetime | None]]) -> Member | None:  # fmt: skip
    """The newest of ``candidates`` of ``member``'s alert that ended before ``member``
    started, within one of ``periods`` with that start, or None."""
    at = member.start
    held = [(a, b) for a, b in periods if a <= at and (b is None or at <= b)]
    if not held:
        return None
    previous = next((c for c in reversed(candidates) if c.rule_id == member.rule_id
                     and not c.flap and c.end is not None and c.end <= at), None)  # fmt: skip
    if previous is None or previous.end is None:
        return None
    return previous if any(a <= previous.end for a, _ in held) else None


def page_from(spans: list[tuple[datetime, datetime | None]], limit: int,
              start: datetime) -> datetime | None:  # fmt: skip
    """From when a covering page of periods overlapping ``[start, …)`` (``(began, ended or
    None)`` of each row, in the page's order: the ``limit`` first, then the rest, as
    :func:`server.alerting.log_reads.covering_page` reads them) holds every period a
    read of the same rows from that time on would find: ``start`` when the page was
    not cut (fewer than ``limit`` rows, or no ``limit``), the ``limit``-th's start (at
    least ``start``) when it had ended, None (from no time) when it was open."""
    if not limit or len(spans) < limit:
        return start
    began, ended = spans[limit - 1]
    return None if ended is None else max(began, start)
