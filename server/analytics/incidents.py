"""Incidents, derived from what is already stored; only their notes are kept apart.

An incident is one firing period of one alert (``alert_events`` transitions, read
through :class:`server.alerting.log.AlertLog`), or, for a service no enabled
alert rule selected when it began (:mod:`server.analytics.rule_coverage`: never by
today's rules, so a rule added later hides nothing), one run of FAILED results
(``service_transitions``). When
inhibition named the cause of a firing (``caused_by``: the firing upstream
service, :mod:`server.alerting.suppression`), that firing joins the incident of
its cause open at the time, so one database outage with three dependants is one
incident with four services affected.

Ids are stable: ``<start, UTC, to the ms>-<8 hex of sha256(member key)>`` of the
incident's first member (``20261122T110000123Z-1a2b3c4d``), where a member key is
the alert log's incident key (``<rule>:<service>@<start>``, what notices carry) or
``status:<service>@<start>`` for a FAILED run. The same stored rows give the same
id on every request, so links and notes never move. The start in the id lets a
lookup read only from that time on.

Notes live in ``incident_notes`` (sql/180_incident_notes.sql), one version per
save, written through the daemon writer's durable path before the client hears
back (or, on a standalone dashboard over a cluster, one acknowledged insert).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.alerting.catalog import flap_spans
from server.alerting.log import AlertLog, aware, table_columns
from server.alerting.rules import burn_rules
from server.alerting.state import alert_id
from server.analytics.incident_model import (
    Flaps,
    Incident,
    Member,
    flap_reach,
    group,
    id_start,
    incident_id,
    key_start,
)
from server.analytics.incident_runs import Runs
from server.analytics.rule_coverage import Coverage, watchers
from server.config.checks import RESERVED_ID
from server.config.models import Config
from server.core.latest import per_last
from server.storage import Storage

NOTE_COLUMNS = table_columns("incident_notes")
LOOKBACK = timedelta(days=30)  # how far before a range a still-open incident's start is read
CAUSE_BEFORE = timedelta(days=1)  # how long before an incident's id start a cause is looked for
MAX_NOTE = 4000  # characters
__all__ = ["Incident", "Incidents", "Member", "SavedNotes", "group", "id_start", "incident_id"]


class NoteSink(Protocol):
    """The daemon's writer (``Writer.add_durable``) or a test's stand-in."""

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...


class SavedNotes:
    """The newest note this process saved per incident: read-your-writes.

    A save through the daemon's writer is on disk when answered but reaches
    ``incident_notes`` only at the writer's next insert (``insert_interval``, 5 s by
    default); until then a read would show the previous note. Reads merge these
    with the stored ones, the newer ``updated_at`` winning (ours on a tie), so the
    answer after a 200 is what was saved. Saves of one incident get strictly rising
    times (1 ms apart at least), so storage orders them as they were made even when
    the clock has not moved. Holds at most :data:`KEEP` incidents (oldest dropped),
    thread-safe: one per web app (``WebContext.saved_notes``).
    """

    KEEP = 4096

    def __init__(self) -> None:
        self._notes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._stamps: OrderedDict[str, datetime] = OrderedDict()  # last time handed out
        self._lock = threading.Lock()
        self.version = 0  # counts notes kept: an answer holding notes is stale once it moves

    def stamp(self, incident_id_: str, now: datetime) -> datetime:
        """The time to store a save of ``incident_id_`` made at ``now`` under: ``now``,
        or 1 ms after the last time handed out for it if that is not earlier."""
        with self._lock:
            last = self._stamps.get(incident_id_)
            at = last + timedelta(milliseconds=1) if last is not None and last >= now else now
            self._bounded(self._stamps, incident_id_, at)
        return at

    def keep(self, incident_id_: str, note: dict[str, Any]) -> None:
        """Remember ``note`` (``{note, author, updated_at}``; note '' for cleared) once it
        is saved, unless a later save of the incident was remembered first."""
        with self._lock:
            held = self._notes.get(incident_id_)
            if held is None or held["updated_at"] <= note["updated_at"]:
                self._bounded(self._notes, incident_id_, note)
                self.version += 1

    def _bounded(self, kept: OrderedDict[str, Any], key: str, value: Any) -> None:
        kept[key] = value
        kept.move_to_end(key)
        while len(kept) > self.KEEP:
            kept.popitem(last=False)

    def newest(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """What this process saved last for each of ``ids`` it saved."""
        with self._lock:
            return {i: self._notes[i] for i in ids if i in self._notes}


class Incidents:
    """Derives incidents from ``storage`` for ``config``'s services (read-only but notes).

    ``saved``: notes this process saved, read over the stored ones (:class:`SavedNotes`).
    """

    def __init__(self, storage: Storage, config: Config, saved: SavedNotes | None = None) -> None:
        self.storage = storage
        self.config = config
        self.saved = saved if saved is not None else SavedNotes()
        self.log = AlertLog(None, storage)

    # -- reads -------------------------------------------------------------------------------
    def between(
        self, start: datetime, end: datetime, *, service_id: str | None = None,
        services: Collection[str] | None = None, limit: int | None = None,
        lookback: timedelta = LOOKBACK, details: bool = True,
        current: Mapping[str, int] | None = None, now: datetime | None = None,
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
        read = _Read(self, since, end, current)
        scope = read.coverage.among({service_id} if service_id else wanted)
        while True:
            seeds = [self._periods(start, end, since=since, about=service_id or "",
                                   services=among, limit=cap)]  # fmt: skip
            if scope.candidates:
                seeds.append(read.runs.failed(scope, start, end, since=since, limit=cap))
            grouped = group(self._left(self._complete([m for s in seeds for m in s], read)),
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
            self._attach(found, min(i.start for i in found), end, details)
        return found

    def get(self, incident_id_: str, now: datetime) -> Incident | None:
        """The incident with this id (or holding a member of this id), or None: what was
        firing or failing at the start the id spells (the member itself, or a cause that
        began up to :data:`CAUSE_BEFORE` before), assembled whole as :meth:`between`
        assembles a page's (:meth:`_complete`), with notes, acks and notices.
        Raises StorageError."""
        start = id_start(incident_id_)
        if start is None or start > now:
            return None
        after, until = now + timedelta(seconds=1), start + timedelta(milliseconds=1)
        since = start - CAUSE_BEFORE
        read = _Read(self, since, after, None)
        members = self._periods(start, after, since=since, before=until)
        members += read.runs.failed(read.coverage, start, after, since=since, before=until)
        found = group(self._left(self._complete(members, read)), read.flaps(),
                      burn_rules(self.config))  # fmt: skip
        for incident in found:
            if incident.id == incident_id_ or any(
                incident_id(m) == incident_id_ for m in incident.members
            ):
                self._attach([incident], incident.start, now, True)
                return incident
        return None

    def _periods(self, start: datetime, end: datetime, *, since: datetime, about: str = "",
                 services: list[str] | None = None, caused: list[str] | None = None,
                 among: list[str] | None = None, limit: int = 0,
                 before: datetime | None = None) -> list[Member]:  # fmt: skip
        periods = self.log.firing_periods(start, end, since=since, about=about,
                                          services=services, caused=caused, among=among,
                                          limit=limit)  # fmt: skip
        return [
            Member(
                f"{alert_id(p.rule_id, p.service_id)}@{key_start(p.start)}",
                p.rule_id,
                p.service_id,
                p.severity,
                p.start,
                p.end,
                p.message,
                p.caused_by,
            )
            for p in periods
            if before is None or p.start < before
        ]

    def _complete(self, members: list[Member], read: _Read) -> list[Member]:
        """``members`` and every other member of the incidents they belong to: the
        periods and rule-less runs of their services and of the causes they name, and
        the periods those services caused, until no service is new (whole incidents,
        whatever a limit or filter picked), all begun in ``[read.since, read.end)``.
        Read from the earliest start found on, and again from an earlier one when a
        cause or run found starts before it. One statement of periods a round, reading
        only the services that can have one to add (:meth:`_Read.dependants`)."""
        have = {m.key: m for m in members}
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
                if not m.rule_id or m.service_id in flaps or several.get(m.service_id, 0) > 1
            }
            alerts -= seen
            if not todo and not alerts:
                break
            causes = (todo | alerts) - caused
            dependants = read.dependants(causes)
            found: list[Member] = []
            if alerts or dependants:
                found += self._periods(first, end, since=since, services=sorted(alerts),
                                       caused=sorted(causes),
                                       among=sorted(alerts | dependants))  # fmt: skip
            runs = read.coverage.among(todo)
            if runs.candidates:
                found += read.runs.failed(runs, first, end, since=since)
            done |= todo
            seen |= alerts
            caused |= causes
            have |= {m.key: m for m in found if m.key not in have}
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

    def _attach(self, found: list[Incident], since: datetime, end: datetime,
                details: bool) -> None:  # fmt: skip
        """Notes, and with ``details`` acks and notices, of ``found`` (at most three
        queries whatever their number)."""
        notes = self.notes([i.id for i in found])
        for incident in found:
            incident.note = notes.get(incident.id)
        if not details:
            return
        acks: dict[str, list[dict[str, Any]]] = {}
        for row in self.log.events(since, end + timedelta(days=1), ("ack",)):
            alert = alert_id(row["rule_id"], row["service_id"])
            acks.setdefault(alert, []).append({
                "at": aware(row["timestamp"]), "who": row["caused_by"],
                "comment": row["message"], "alert_id": alert,
            })  # fmt: skip
        notices = self.log.incident_notices(since)
        for incident in found:
            for m in incident.members:
                incident.notices += notices.get(m.key, [])
                incident.acks += [
                    a
                    for a in acks.get(m.alert_id, ())
                    if a["at"] >= m.start and (m.end is None or a["at"] <= m.end)
                ]
            incident.acks.sort(key=lambda a: a["at"])

    # -- notes -------------------------------------------------------------------------------
    def notes(self, ids: list[str], cleared: bool = False) -> dict[str, dict[str, Any]]:
        """The newest note (``{note, author, updated_at}``) of each id that has a non-empty
        one: stored, or saved by this process and not yet stored (:class:`SavedNotes`).
        With ``cleared``, also the ids whose newest save cleared the note (``note`` ''):
        clearing is a change too, with its author and time (the feed's ``updated``)."""
        if not ids:
            return {}
        rows = self.storage.query(
            "SELECT incident_id, argMax(note, updated_at) AS text, "
            "argMax(author, updated_at) AS by, max(updated_at) AS at "
            f"FROM {self.storage.database}.incident_notes "
            "WHERE incident_id IN {ids:Array(String)} GROUP BY incident_id",
            {"ids": ids},
        )
        found = {
            r["incident_id"]: {"note": r["text"], "author": r["by"], "updated_at": aware(r["at"])}
            for r in rows
        }
        for iid, mine in self.saved.newest(ids).items():
            if iid not in found or mine["updated_at"] >= found[iid]["updated_at"]:
                found[iid] = mine
        return {iid: note for iid, note in found.items() if note["note"] or cleared}

    def save_note(self, incident_id_: str, note: str, author: str, now: datetime,
                  sink: NoteSink | None) -> dict[str, Any]:  # fmt: skip
        """Store ``note`` (at most :data:`MAX_NOTE` characters; '' clears it); returns it as
        saved, ``{note, author, updated_at}`` (``updated_at`` may be ``now`` + a few ms:
        :meth:`SavedNotes.stamp`).

        On disk when this returns: through ``sink.add_durable`` (the daemon's
        writer), or without one as an acknowledged insert; read back at once either way
        (:class:`SavedNotes`). Raises ValueError for a note too long, and what the sink
        or storage raise (Busy, StorageError).
        """
        if len(note) > MAX_NOTE:
            raise ValueError(f"note: at most {MAX_NOTE} characters, got {len(note)}")
        at = self.saved.stamp(incident_id_, now)
        row = (incident_id_, note, author, at)
        if sink is not None:
            sink.add_durable("incident_notes", [row])
        else:
            self.storage.insert("incident_notes", NOTE_COLUMNS, [row])
        saved = {"note": note, "author": author, "updated_at": at}
        self.saved.keep(incident_id_, saved)
        return saved


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


class _Read:
    """What one read of incidents (:meth:`Incidents.between` or :meth:`Incidents.get`)
    reads once and hands down: the coverage of every service (its row-count probe
    once a read, not at every step), the rule-less runs' reader (:class:`Runs`, which
    keeps each service's oldest transition) and, on first need, which services each
    cause inhibited in ``[since, end)``."""

    def __init__(self, incidents: Incidents, since: datetime, end: datetime,
                 current: Mapping[str, int] | None) -> None:  # fmt: skip
        self.since, self.end = since, end
        self.coverage = Coverage.read(incidents.storage, incidents.config)
        self.runs = Runs(incidents.storage, current)
        self._log = incidents.log
        self._config = incidents.config
        self._inhibited: dict[str, set[str]] | None = None
        self._flaps: dict[str, list[tuple[datetime, datetime | None]]] | None = None

    def flaps(self) -> Flaps:
        """Each service that flapped in ``[since, end)`` -> its flapping periods ``(from,
        to)`` (:meth:`server.alerting.log_reads.AlertReads.flapping`), each from the
        engine's ``flapping`` event less the service's flap span (the checks that made it
        flap: :func:`server.alerting.catalog.flap_spans`). Read on first need."""
        if self._flaps is None:
            spans, zero = flap_spans(self._config), timedelta(0)
            found = self._log.flapping(self.since, self.end)
            self._flaps = {sid: [(a - spans.get(sid, zero), b) for a, b in periods]
                           for sid, periods in found.items()}  # fmt: skip
        return self._flaps

    def dependants(self, causes: Collection[str]) -> set[str]:
        """The services whose firings in ``[since, end)`` named one of ``causes`` as their
        cause: the only ones that can hold a period caused by them. Raises StorageError."""
        if self._inhibited is None:
            self._inhibited = self._log.inhibited(self.since, self.end)
        return {d for c in causes for d in self._inhibited.get(c, ())}
