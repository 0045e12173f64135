"""Incidents, derived from what is already stored; only their notes are kept apart.

An incident is one firing period of one alert (``alert_events`` transitions, read
through :class:`server.alerting.log.AlertLog`), or, for a service no enabled
alert rule selected when it began (:mod:`server.analytics.rule_coverage`: never by
today's rules, so a rule added later hides nothing), one run of FAILED results
(``service_transitions``). When
inhibition named the cause of a firing (``caused_by``: the firing upstream
service, :mod:`server.alerting.suppression`), that firing joins the incident of
its cause open at the time, so one database outage with three dependants is one
incident with four services affected. A firing that began while its service was in
a run of FAILED (or, begun while not OK, of checks not OK) reaches back to the
run's start (:meth:`Runs.reaching`): a rule
renamed, or a service disabled and enabled again, while it fails, goes on in the
same incident. A flapping period in which the service failed is a member too
(:mod:`server.analytics.incident_flaps`), keeping its incident open while it flaps.

Ids are stable: ``<start, UTC, to the ms>-<8 hex of sha256(member key)>`` of the
incident's first member (``20261122T110000123Z-1a2b3c4d``), where a member key is
the alert log's incident key (``<rule>:<service>@<start>``, what notices carry) or
``status:<service>@<start>`` for a FAILED run (``flap:<service>@<declared>`` for a
flapping period). The same stored rows give the same
id on every request, so links and notes never move. The start in the id lets a
lookup read only from that time on.

Notes: :mod:`server.analytics.incident_notes` (names re-exported here).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from server.alerting.log import AlertLog, aware
from server.alerting.log_reads import to_ms
from server.alerting.rules import burn_rules
from server.alerting.state import alert_id
from server.analytics.incident_model import (
    Incident,
    Member,
    flap_reach,
    group,
    id_start,
    incident_id,
    key_start,
)
from server.analytics.incident_notes import (
    MAX_NOTE,
    NOTE_COLUMNS,
    Notes,
    SavedNotes,
    attach,
    noted,
)
from server.analytics.incident_read import Read
from server.analytics.rule_coverage import watchers
from server.config.checks import RESERVED_ID
from server.config.models import Config
from server.core.latest import per_last
from server.storage import Storage

LOOKBACK = timedelta(days=30)  # how far before a range a still-open incident's start is read
CAUSE_BEFORE = timedelta(days=1)  # how long before an incident's id start a cause is looked for
# how far before its start an unlimited page of periods also keeps what ended, for
# completing its incidents from the same statement (:meth:`Incidents._periods`)
KEEP_BEFORE = timedelta(hours=2)
__all__ = ["MAX_NOTE", "NOTE_COLUMNS", "Incident", "Incidents", "Member", "SavedNotes", "group",
           "id_start", "incident_id"]  # fmt: skip


class Incidents:
    """Derives incidents from ``storage`` for ``config``'s services (read-only but notes).

    ``saved``: notes this process saved, read over the stored ones (:class:`SavedNotes`).
    """

    def __init__(self, storage: Storage, config: Config, saved: SavedNotes | None = None) -> None:
        self.storage = storage
        self.config = config
        self.log = AlertLog(None, storage)
        self._notes = Notes(storage, saved)
        self.saved = self._notes.saved
        self.notes, self.save_note = self._notes.notes, self._notes.save_note

    # -- reads -------------------------------------------------------------------------------
    def between(
        self, start: datetime, end: datetime, *, service_id: str | None = None,
        services: Collection[str] | None = None, limit: int | None = None,
        lookback: timedelta = LOOKBACK, details: bool = True,
        current: Mapping[str, int] | None = None, now: datetime | None = None,
        upto: datetime | None = None, notes: bool = True,
    ) -> list[Incident]:  # fmt: skip
        """Incidents overlapping ``[start, end)``, open ones first, then newest first, with
        their notes and (``details``) acks and notices. ``service_id``: only those
        affecting it; ``services``: only those with a member among them, read by them
        (the status page's: others never fill its ``limit``); ``limit``: at most that
        many (None: all; 0: none, answered without a read; ClickHouse pairs and limits
        the periods: converting rows is what a request pays for). Filters and the limit
        pick the members to start from; each incident is then assembled whole
        (:meth:`_complete`), so its id, start, members and note never depend on them.
        A start is looked for up to ``lookback`` before ``start``. ``current``: each
        checked service's status code, when the caller has read them (else read from
        ``service_current`` if needed). ``now``: an ongoing incident lasts until then,
        so a period that starts after it holds none (answered without a read).
        ``upto``: only the incidents holding a member that overlaps ``[start, upto)``
        (and those completing them brings in: :meth:`get`'s), each still assembled
        whole from what began up to ``end`` (every period of the services it meets).
        ``notes``: False leaves notes unread (``note`` None): an answer kept while the
        tables it read are unchanged then outlives every note saved, and :meth:`noted`
        gives copies with them (one query; the dashboard's way).

        Raises ValueError for a negative ``limit``, StorageError when ClickHouse does
        not answer."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit: 0 or more (None for all), got {limit}")
        if limit == 0 or (now is not None and start > now):
            return []
        # twice the page of each kind to start with: dependants that join their cause's
        # incident make a page of members fewer incidents (one more round otherwise)
        since, cap = start - lookback, 2 * (limit or 0)
        wanted = set(services) if services is not None else None
        among = sorted(wanted) if wanted is not None else None
        read = Read(self, since, end, current)
        read.whole = upto is not None
        scope = read.coverage.among({service_id} if service_id else wanted)
        # unfiltered, the page of runs also holds what completing it reads again
        covering = not service_id and wanted is None and upto is None
        # an unlimited page of all services' periods (or the given ones') is kept for
        # completing its incidents (:meth:`_periods`): the second statement is not run
        keep = not cap and upto is None and not service_id
        reach = start - KEEP_BEFORE if keep else None  # the runs', likewise (:meth:`Runs.failed`)
        while True:
            seeds = [self._periods(start, end, since=since, about=service_id or "",
                                   services=among, limit=cap, before=upto,
                                   read=read if keep else None)]  # fmt: skip
            if scope.candidates:
                seeds.append(read.runs.failed(scope, start, end, since=since, limit=cap,
                                              before=upto, covering=covering,
                                              reach=reach))  # fmt: skip
            flapped = [m for m in read.flap_members(among)
                       if (m.end is None or m.end > start) and m.start < (upto or end)]  # fmt: skip
            flapped = [m for m in flapped if not service_id or m.service_id == service_id]
            grouped = group(self._left(self._complete([m for s in seeds for m in s] + flapped,
                                                      read)),
                            read.flaps(), burn_rules(self.config))  # fmt: skip
            found, ends = [], {}  # ``end`` is a property over the members: read once each
            for i in grouped:
                ends[id(i)] = ended = i.end
                if ((ended is None or ended > start) and i.start < end
                        and (not service_id or service_id in i.services)
                        and (wanted is None or wanted.intersection(i.services))):  # fmt: skip
                    found.append(i)
            found.sort(key=lambda i: (ends[id(i)] is None, i.start, i.id), reverse=True)
            if not cap or _enough(seeds, cap, found, limit or 0):
                break
            cap *= 4
        found = found[:limit] if limit is not None else found
        if found:
            self._attach(found, min(i.start for i in found), end, details, notes)
        return found

    def get(self, incident_id_: str, now: datetime, notes: bool = True) -> Incident | None:
        """The incident with this id (or holding a member of this id), or None: the one
        :meth:`between` answers for the window from the start the id spells to ``now``
        (a cause looked for up to :data:`CAUSE_BEFORE` before), with notes, acks and
        notices (``notes``: as :meth:`between`'s). One assembly with the list's, so a
        page of incidents and an incident's own page never disagree (its end, members,
        timeline). Raises StorageError."""
        start = id_start(incident_id_)
        if start is None or start > now:
            return None
        # seeded by what overlaps the id's instant only: the incident holds a member that
        # does (the one the id is of), and is assembled whole from it, as a list's page
        found = self.between(start, now + timedelta(seconds=1), lookback=CAUSE_BEFORE, now=now,
                             upto=start + timedelta(milliseconds=1), notes=notes)  # fmt: skip
        for incident in found:
            if incident.id == incident_id_ or any(
                incident_id(m) == incident_id_ for m in incident.members
            ):
                return incident
        return None

    def _periods(self, start: datetime, end: datetime, *, since: datetime, about: str = "",
                 services: list[str] | None = None, caused: list[str] | None = None,
                 among: list[str] | None = None, limit: int = 0,
                 before: datetime | None = None, read: Read | None = None,
                 ) -> list[Member]:  # fmt: skip
        """:meth:`AlertLog.firing_periods` as members. ``read`` with a seed read (no
        ``caused``, no ``limit``): read from :data:`KEEP_BEFORE` before ``start``, all
        kept on it (what a read of the same services from then on would find), those
        overlapping ``start`` answered; with a read of ``caused`` and ``among`` (what
        :meth:`_complete` asks), answered from that page when it holds all the read
        would find (same window, from a time at or after the page's, services among the
        page's): the same rows, filtered as the statement filters, in its order."""
        start = to_ms(start)
        page = read.periods if read is not None else None
        if (page is not None and caused is not None and among is not None and not limit
                and before is None and not about and page[:2] == (since, end)
                and start >= page[3]
                and (page[2] is None or page[2].issuperset(among))):  # fmt: skip
            own, causes, wanted = set(services or ()), set(caused), set(among)
            return [m for m in page[4] if m.service_id in wanted
                    and (m.service_id in own or m.caused_by in causes)
                    and (m.end is None or m.end > start)]  # fmt: skip
        keep = read is not None and caused is None and not limit
        reach = start - KEEP_BEFORE if keep else start
        periods = self.log.firing_periods(reach, end, since=since, about=about,
                                          services=services, caused=caused, among=among,
                                          limit=limit, before=before)  # fmt: skip
        members = [self._member(p) for p in periods]
        if not keep or read is None:
            return members
        read.periods = (since, end, None if services is None else frozenset(services), reach,
                        members)  # fmt: skip
        return [m for m in members if m.end is None or m.end > start]

    @staticmethod
    def _member(p: Any) -> Member:
        """A firing period (:class:`server.alerting.log_reads.Incident`) as a member."""
        return Member(f"{alert_id(p.rule_id, p.service_id)}@{key_start(p.start)}", p.rule_id,
                      p.service_id, p.severity, p.start, p.end, p.message,
                      p.caused_by)  # fmt: skip

    def _complete(self, members: list[Member], read: Read) -> list[Member]:
        """``members`` and every other member of the incidents they belong to: the
        periods and rule-less runs of their services and of the causes they name, and
        the periods those services caused, until no service is new (whole incidents,
        whatever a limit or filter picked), all begun in ``[read.since, read.end)``.
        Read from the earliest start found on, and again from an earlier one when a
        cause or run found starts before it. One statement of periods a round, reading
        only the services that can have one to add (:meth:`Read.dependants`)."""
        have = {m.key: m for m in read.runs.reaching(members, read.since)}
        done: set[str] = set()  # services whose runs were read from ``read_from`` on
        seen: set[str] = set()  # services whose own periods were read from it on
        caused: set[str] = set()  # services the periods they caused were read of, from it on
        since, end, read_from = read.since, read.end, read.end
        flaps, several = read.flaps(), watchers(self.config)
        while have:
            # from where a member's outage reaches back (a handed-over run: its run's
            # start; a firing while its service flapped: the flapping period's start)
            first = min(flap_reach(m, flaps) for m in have.values())
            if first < read_from:  # an earlier start found: what was read, again from it
                done, seen, caused, read_from = set(), set(), set(), first
            todo = {m.service_id for m in have.values()} - done
            # only what can join: causes' periods (and alerts a run joined or goes on
            # from, a rule having left while its service failed; the same alert's
            # firings, re-fired while flapping; a service's other rules' firings),
            # dependants' periods, runs an alert joined
            alerts = {m.caused_by for m in have.values() if m.caused_by} | {
                m.service_id
                for m in have.values()
                if not m.rule_id
                or m.service_id in flaps
                or several.get(m.service_id, 0) > 1
                or m.reach < m.start
                or read.whole  # seeded by one instant: later firings that reach back into it
            }
            alerts -= seen
            if not todo and not alerts:
                break
            causes = (todo | alerts) - caused
            dependants = read.dependants(causes)
            found: list[Member] = []
            if alerts or dependants:
                found += self._periods(first, end, since=since, services=sorted(alerts),
                                       caused=sorted(causes), among=sorted(alerts | dependants),
                                       read=read)  # fmt: skip
            runs = read.coverage.among(todo)
            if runs.candidates:
                found += read.runs.failed(runs, first, end, since=since)
            found += read.flap_members(todo)
            done |= todo
            seen |= alerts
            caused |= causes
            found = read.runs.reaching([m for m in found if m.key not in have], since)
            have |= {m.key: m for m in found}
        return list(have.values())

    def _left(self, members: list[Member]) -> list[Member]:
        """``members`` with each open run of FAILED of a service no longer monitored
        (removed from the configuration or disabled) ended at that service's last
        check: no check is left to end it, as an alert whose rule left is resolved
        then (:mod:`server.alerting`). A service monitored again is judged by its
        checks as before."""
        live = _monitored(self.config)
        gone = sorted({m.service_id for m in members if not m.rule_id and m.end is None
                       and m.service_id not in live})  # fmt: skip
        if not gone:
            return members
        rows = self.storage.query(
            "SELECT service_id, max(timestamp) AS last "
            f"FROM {self.storage.database}.service_status "
            "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
            {"ids": gone},
        )
        last = {r["service_id"]: aware(r["last"]) for r in rows}
        return [replace(m, end=max(last.get(m.service_id, m.start), m.start))
                if not m.rule_id and m.end is None and m.service_id in gone else m
                for m in members]  # fmt: skip

    def noted(self, found: list[Incident]) -> list[Incident]:
        """:func:`server.analytics.incident_notes.noted` over this source's notes: copies
        of ``found`` (derived with ``notes=False``) with their notes. One query."""
        return noted(self._notes, found)

    def _attach(self, found: list[Incident], since: datetime, end: datetime,
                details: bool, notes: bool) -> None:  # fmt: skip
        """With ``notes`` notes, and with ``details`` acks and notices, of ``found`` (at
        most three queries whatever their number)."""
        if notes:
            attach(self._notes, found)
        if not details:
            return
        # of the members' services and incidents only: an old incident's page read every
        # notice and ack since it began (~15,000 notices at 1,000 services over 20 days)
        services = sorted({m.service_id for i in found for m in i.members})
        acks: dict[str, list[dict[str, Any]]] = {}
        for row in self.log.events(since, end + timedelta(days=1), ("ack",), services):
            alert = alert_id(row["rule_id"], row["service_id"])
            acks.setdefault(alert, []).append({
                "at": aware(row["timestamp"]), "who": row["caused_by"],
                "comment": row["message"], "alert_id": alert,
            })  # fmt: skip
        notices = self.log.incident_notices(
            since, sorted({m.key for i in found for m in i.members})
        )
        for incident in found:
            for m in incident.members:
                # the member's service: a notice's row in the timeline says whose it was
                incident.notices += [n | {"service_id": m.service_id}
                                     for n in notices.get(m.key, ())]  # fmt: skip
                incident.acks += [
                    a
                    for a in acks.get(m.alert_id, ())
                    if a["at"] >= m.start and (m.end is None or a["at"] <= m.end)
                ]
            incident.acks.sort(key=lambda a: a["at"])


@per_last
def _monitored(config: Config) -> frozenset[str]:
    """Ids of ``config``'s enabled services and the daemon's own."""
    return frozenset({s.id for s in config.services if s.enabled} | {RESERVED_ID})


def _enough(seeds: list[list[Member]], cap: int, found: list[Incident], limit: int) -> bool:
    """Whether members read ``cap`` at most of each kind (``seeds``; a kind may hold a
    few more that were read whole) can hold no incident that belongs in the first
    ``limit`` of ``found`` (what they grouped into, sorted). A kind cut at ``cap`` left
    out only members that sort (open, start) at or below its ``cap``-th; an incident
    sorts at or below its open member left out, or its first when none is open.
    Unfiltered reads only: a filter may leave out an open member of another service."""
    floors = [sorted(((m.end is None, m.start) for m in s), reverse=True)[cap - 1]
              for s in seeds if len(s) >= cap]  # fmt: skip
    if not floors:
        return True
    if len(found) < limit:
        return False
    last = found[limit - 1]
    return all(f <= (last.end is None, last.start) for f in floors)
