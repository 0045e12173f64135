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
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.alerting.log import AlertLog, aware, table_columns
from server.analytics.incident_model import (
    Incident,
    Member,
    group,
    id_start,
    incident_id,
    key_start,
)
from server.analytics.rule_coverage import Coverage
from server.config.models import Config
from server.core import status as statuses
from server.storage import Storage

NOTE_COLUMNS = table_columns("incident_notes")
LOOKBACK = timedelta(days=30)  # how far before a range a still-open incident's start is read
MAX_NOTE = 4000  # characters
_FAILED = int(statuses.Status.FAILED)
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
        current: Mapping[str, int] | None = None,
    ) -> list[Incident]:  # fmt: skip
        """Incidents overlapping ``[start, end)``, open ones first, then newest first, with
        their notes and (``details``) acks and notices. ``service_id``: only those
        affecting it; ``services``: only those with a member among them, read by them
        (the status page's: others never fill its ``limit``); ``limit``: at most that
        many (ClickHouse pairs and limits the
        periods: converting rows is what a request pays for). A start is looked for up
        to ``lookback`` before ``start``. ``current``: each checked service's status code,
        when the caller has read them (else read from ``service_current`` if needed).

        Raises StorageError when ClickHouse does not answer."""
        since, cap = start - lookback, limit or 0
        wanted = set(services) if services is not None else None
        among = sorted(wanted) if wanted is not None else None
        members = self._periods(start, end, since=since, about=service_id or "",
                                services=among, limit=cap)  # fmt: skip
        scope = self.coverage({service_id} if service_id else wanted)
        if scope.candidates:
            members += self._failed_runs(scope, start, end, since=since, limit=cap,
                                         current=current)  # fmt: skip
        members += self._causes(members, end, since)
        found = group(members)
        found = [i for i in found if (i.end is None or i.end > start) and i.start < end]
        if service_id:
            found = [i for i in found if service_id in i.services]
        if wanted is not None:
            found = [i for i in found if wanted.intersection(i.services)]
        found.sort(key=lambda i: (i.end is None, i.start, i.id), reverse=True)
        if limit is not None:
            found = found[:limit]
        if found:
            self._attach(found, min(i.start for i in found), end, details)
        return found

    def get(self, incident_id_: str, now: datetime) -> Incident | None:
        """The incident with this id (or holding a member of this id), or None."""
        start = id_start(incident_id_)
        if start is None or start > now:
            return None
        after, until = now + timedelta(seconds=1), start + timedelta(milliseconds=1)
        # what was firing at the start (the member itself, or a cause that began up to
        # a day before), then what those services caused, or fired themselves, afterwards
        members = self._periods(start, after, since=start - timedelta(days=1), before=until)
        members += self._failed_runs(self.coverage(None), start, after,
                                     since=start - timedelta(days=1), before=until)  # fmt: skip
        for sid in {m.service_id for m in members}:
            members += self._periods(start, after, since=start, about=sid)
        unique = list({m.key: m for m in members}.values())
        for incident in group(unique):
            if incident.id == incident_id_ or any(
                incident_id(m) == incident_id_ for m in incident.members
            ):
                self._attach([incident], incident.start, now, True)
                return incident
        return None

    def _periods(self, start: datetime, end: datetime, *, since: datetime, about: str = "",
                 services: list[str] | None = None, limit: int = 0,
                 before: datetime | None = None) -> list[Member]:  # fmt: skip
        periods = self.log.firing_periods(start, end, since=since, about=about,
                                          services=services, limit=limit)  # fmt: skip
        return [
            Member(
                f"{p.rule_id}:{p.service_id}@{key_start(p.start)}",
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

    def _causes(self, members: list[Member], end: datetime, since: datetime) -> list[Member]:
        """The periods of causes that ``members`` name but a limit or filter left out."""
        have = {m.service_id for m in members}
        wanted = sorted({m.caused_by for m in members if m.caused_by} - have)
        if not wanted:
            return []
        first = min(m.start for m in members if m.caused_by in wanted)
        return self._periods(first, end, since=since, services=wanted)

    def coverage(self, services: Collection[str] | None) -> Coverage:
        """Which of ``services`` (None: all) had FAILED runs that count, judged by the
        rules when each run began (:mod:`server.analytics.rule_coverage`), not today's."""
        return Coverage.read(self.storage, self.config, services)

    def _failed_runs(self, scope: Coverage, start: datetime, end: datetime, *,
                     since: datetime, limit: int = 0, before: datetime | None = None,
                     current: Mapping[str, int] | None = None) -> list[Member]:  # fmt: skip
        """Runs of FAILED overlapping ``[start, end)`` that began after ``since`` (and
        before ``before``) while no rule watched their service, paired in ClickHouse
        like the firing periods."""
        ids = scope.candidates
        if not ids:
            return []
        counted, params = scope.sql()
        rows = self.storage.query(
            f"""
            SELECT service_id, began, if(has_next, next_at, NULL) AS ended, message
            FROM (
                SELECT service_id, to_status, message, timestamp AS began,
                       leadInFrame(timestamp) OVER w AS next_at,
                       leadInFrame(toUInt8(1)) OVER w AS has_next
                FROM {self.storage.database}.service_transitions
                WHERE service_id IN {{ids:Array(String)}}
                  AND (to_status = {{f:UInt8}} OR from_status = {{f:UInt8}})
                  AND timestamp >= {{since:DateTime64(3, 'UTC')}}
                  AND timestamp < {{end:DateTime64(3, 'UTC')}}
                WINDOW w AS (PARTITION BY service_id ORDER BY timestamp
                             ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
            )
            WHERE to_status = {{f:UInt8}} AND began < {{before:DateTime64(3, 'UTC')}}
              AND (NOT has_next OR next_at > {{start:DateTime64(3, 'UTC')}}){counted}
            ORDER BY has_next, began DESC, service_id LIMIT {{limit:UInt32}}""",
            {"ids": ids, "f": _FAILED, "since": since, "start": start, "end": end,
             "before": before or end, "limit": limit or 2**32 - 1, **params},
        )  # fmt: skip
        out = []
        for row in rows:
            sid, at = row["service_id"], aware(row["began"])
            message = row["message"].split(": ", 1)[-1]  # "status changed A -> B: <check>"
            ended = aware(row["ended"]) if row["ended"] else None
            out.append(
                Member(f"status:{sid}@{key_start(at)}", "", sid, "critical", at, ended, message)
            )
        for member in self._first_runs(ids, current):
            if (
                (member.end is None or member.end > start)
                and since <= member.start < min(before or end, end)
                and scope.counted(member.service_id, member.start)
            ):
                out.append(member)
        return out

    def _first_runs(self, ids: list[str], current: Mapping[str, int] | None) -> list[Member]:
        """Runs of FAILED that began with a service's very first check: the recorder
        writes a transition only on a change, so such a run has no transition into
        FAILED. Found as the services whose oldest transition leaves FAILED (the run
        ended there) or that have none and are FAILED now (still open, ``current`` or
        ``service_current``); their first check, the run's start, is then read for
        those few services only."""
        db = self.storage.database
        rows = self.storage.query(
            "SELECT service_id, min(timestamp) AS first_at, argMin(from_status, timestamp) "
            f"AS first_from FROM {db}.service_transitions "
            "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
            {"ids": ids},
        )
        firsts = {r["service_id"]: r for r in rows}
        quiet = [sid for sid in ids if sid not in firsts]
        if quiet and current is None:
            rows = self.storage.query(
                f"SELECT service_id, argMaxMerge(status_code) AS code FROM {db}.service_current "
                "WHERE service_id IN {ids:Array(String)} GROUP BY service_id",
                {"ids": quiet},
            )
            current = {r["service_id"]: int(r["code"]) for r in rows}
        ended: dict[str, datetime | None] = {
            sid: aware(r["first_at"]) for sid, r in firsts.items() if r["first_from"] == _FAILED
        }
        ended |= {sid: None for sid in quiet if (current or {}).get(sid) == _FAILED}
        if not ended:
            return []
        checks = self.storage.query(
            f"""
            SELECT service_id, min(timestamp) AS began,
                   argMin(message, timestamp) AS message
            FROM {self.storage.database}.service_status
            WHERE service_id IN {{ids:Array(String)}}
              AND timestamp >= (
                  SELECT min(hour) FROM {self.storage.database}.service_status_hourly
                  WHERE service_id IN {{ids:Array(String)}})
            GROUP BY service_id""",
            {"ids": sorted(ended)},
        )  # fmt: skip
        out = []
        for row in checks:
            sid, at = row["service_id"], aware(row["began"])
            out.append(Member(f"status:{sid}@{key_start(at)}", "", sid, "critical", at, ended[sid],
                              row["message"]))  # fmt: skip
        return out

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
            acks.setdefault(f"{row['rule_id']}:{row['service_id']}", []).append({
                "at": aware(row["timestamp"]), "who": row["caused_by"],
                "comment": row["message"], "alert_id": f"{row['rule_id']}:{row['service_id']}",
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
    def notes(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The newest note (``{note, author, updated_at}``) of each id that has a non-empty
        one: stored, or saved by this process and not yet stored (:class:`SavedNotes`)."""
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
        return {iid: note for iid, note in found.items() if note["note"]}

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
