"""The alert log's reads for the pages, the API, the daily report and the incidents view.

:class:`AlertReads` is the read half of :class:`server.alerting.log.AlertLog`
(which subclasses it, so callers ask the one alert log): the newest events, the
latest state per alert, delivery states per alert and channel, firing periods,
the notices that told of each incident and the runtime silences in force. Also
here, because every read needs them: the column lists of the tables, read from
``sql/``, and :func:`aware` for the times they return. Writes, the outbox and the
restore after a restart are :mod:`server.alerting.log`'s.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from server.alerting.silences import Silence
from server.schema import Statement, Target, declared_columns, render_file, schema_files
from server.storage import Storage
from server.storage.values import parse_datetime

Period = tuple[datetime, datetime | None]  # (from, to), to None while it goes on
# a flapping period: (declared, stopped or None, span of the checks that made it flap)
Flap = tuple[datetime, datetime | None, timedelta | None]

HISTORY_EVENTS = ("transition", "delivery", "notify", "repeat", "ack", "recalled")


@functools.cache
def table_columns(table: str) -> tuple[str, ...]:
    """Column order of ``table`` as ``sql/`` declares it (one file per table)."""
    name = next(f for f in schema_files() if f.split("_", 1)[1] == f"{table}.sql")
    sql = render_file(name, Target("monitor"))[0]
    return tuple(declared_columns(Statement(name, sql, "table", table)))


TABLES = {t: table_columns(t) for t in ("alert_events", "silences", "notifications")}


# The newest transition of each alert, column by column. The alerts page and the
# restore after a restart both read it, so what the page shows is what a restart
# puts back (they were two copies of one query before).
LATEST_TRANSITION = {
    "state": "argMaxIf(to_state, timestamp, event = 'transition')",
    "since": "maxIf(timestamp, event = 'transition')",
    "started": "maxIf(timestamp, event = 'transition' AND to_state = 'firing')",
    **{name: f"argMaxIf({column}, timestamp, event = 'transition')" for name, column in (
        ("severity", "severity"), ("value", "value"), ("message", "message"),
        ("result", "delivery_result"))},
}  # fmt: skip
# Not in it: ``caused_by`` (whom inhibition named). An alias shadows the column in
# ClickHouse, and the restore reads that column on ack rows (who acknowledged).
CAUSED_BY = {"caused_by": "argMaxIf(caused_by, timestamp, event = 'transition')"}


def latest_per_alert(
    db: str, more: dict[str, str] | None = None, *, where: str = "", having: str = ""
) -> str:
    """SQL giving one row per alert (``rule_id``, ``service_id``) of ``db.alert_events``.

    Columns: those of :data:`LATEST_TRANSITION` (``started`` is 1970 for an alert that
    never fired; every column is its type's zero for one with no transition), then
    ``more`` (name -> aggregate over the alert's events). ``where`` (``AND …``) narrows
    the events read; ``having`` filters the rows and may name any column; their query
    parameters are the caller's.
    """
    columns = ",\n       ".join(
        f"{e} AS {n}" for n, e in {**LATEST_TRANSITION, **(more or {})}.items()
    )
    return (f"SELECT rule_id, service_id,\n       {columns}\n"
            f"FROM {db}.alert_events WHERE rule_id != '' {where} GROUP BY rule_id, service_id"
            + (f"\nHAVING {having}" if having else ""))  # fmt: skip


@dataclass
class Incident:
    """One firing period of one alert: ``end`` is None while it still fires."""

    rule_id: str
    service_id: str
    severity: str
    start: datetime
    end: datetime | None
    cause: str
    message: str = ""  # the firing transition's message
    caused_by: str = ""  # the firing upstream service inhibition named, if any


class AlertReads:
    """Reads from ``storage``; raises RuntimeError when there is none to read."""

    storage: Storage | None

    # -- reads for the web, the report and the incidents view --------------------------------
    def history(self, service_id: str | None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest alert events, of one service or all."""
        cols = ", ".join(TABLES["alert_events"])
        return self._query(f"""
            SELECT {cols} FROM {self._db()}.alert_events
            WHERE ({{sid:String}} = '' OR service_id = {{sid:String}})
              AND event IN {{events:Array(String)}}
            ORDER BY timestamp DESC LIMIT {{limit:UInt32}}""",
            sid=service_id or "", events=list(HISTORY_EVENTS), limit=limit)  # fmt: skip

    def states(self, now: datetime, service_id: str | None = None) -> list[dict[str, Any]]:
        """Latest state per alert (pending, firing, or resolved within a day); of one
        service's alerts only with ``service_id`` (the sort key's prefix: a few granules
        instead of the whole log)."""
        one = "AND service_id = {sid:String}" if service_id is not None else ""
        return self._query(latest_per_alert(self._db(), CAUSED_BY, where=one, having="""
            state IN ('pending', 'firing')
            OR (state = 'resolved' AND since > {day:DateTime64(3, 'UTC')})"""),
            day=now - timedelta(days=1), **({"sid": service_id} if one else {}))  # fmt: skip

    def deliveries(
        self, since: datetime, alert_ids: list[str] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Per alert id, the newest notice per channel queued since ``since`` and its state:
        ``{alert_id: [{channel, state, item_state, incident, attempts, error, ...}]}``.
        ``alert_ids``: only notices telling of one of them (every revision of a notice
        carries its alert ids), for a page about a few alerts."""
        some = "AND hasAny(alert_ids, {only:Array(String)})" if alert_ids is not None else ""
        rows = self._query(f"""
            SELECT alert_id, to_channel AS channel,
                   argMax(item_state, (first, notice_id)) AS news,
                   argMax(incident, (first, notice_id)) AS of_incident,
                   argMax(tuple(notice_id, last_state, tries, last_error, first, changed, gave_up),
                          (first, notice_id)) AS latest
            FROM (
                SELECT notice_id, any(channel) AS to_channel, min(queued_at) AS first,
                       argMax(state, revision) AS last_state, argMax(attempts, revision) AS tries,
                       argMax(error, revision) AS last_error, max(changed_at) AS changed,
                       argMax(permanent, revision) AS gave_up,
                       any(alert_ids) AS ids, any(item_states) AS states, any(incidents) AS incs
                FROM {self._db()}.notifications
                WHERE queued_at >= {{since:DateTime64(3, 'UTC')}} {some}
                GROUP BY notice_id HAVING length(ids) > 0
            ) ARRAY JOIN ids AS alert_id, states AS item_state, incs AS incident
            GROUP BY alert_id, to_channel ORDER BY alert_id, channel""", since=since,
            **({"only": alert_ids} if some else {}))  # fmt: skip
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            notice_id, state, attempts, error, queued, changed, gave_up = row["latest"]
            out.setdefault(row["alert_id"], []).append({
                "channel": row["channel"], "notice_id": notice_id, "state": state,
                "item_state": row["news"], "incident": row["of_incident"],
                "attempts": int(attempts), "error": error or None,
                "permanent": bool(int(gave_up)) if state == "failed" else None,
                "queued_at": aware(queued).isoformat(), "changed_at": aware(changed).isoformat(),
            })  # fmt: skip
        return out

    def firing_periods(
        self, start: datetime, end: datetime, *, since: datetime, about: str = "",
        services: list[str] | None = None, caused: list[str] | None = None,
        among: list[str] | None = None, limit: int = 0, before: datetime | None = None,
    ) -> list[Incident]:  # fmt: skip
        """Firing periods overlapping ``[start, end)`` whose firing is after ``since``,
        paired in ClickHouse (one row each: converting rows is what costs), open ones
        first, then newest first; a firing ends at the alert's next transition.

        ``about``: only periods of that service or caused by it; ``services``: only
        those services'; ``caused``: only those whose inhibition named one of these
        services as the cause; both: either (the periods of ``services`` and those
        caused by ``caused``, one statement); ``among``: only periods of these services
        (the key narrows the read: with ``caused``, the services :meth:`inhibited` says
        they caused); ``limit``: at most that many (0: all); ``before``: only those
        that began before it (paired with their ends up to ``end`` all the same)."""
        read = among if among is not None else (services if caused is None else None)
        rows = self._query(f"""
            SELECT rule_id, service_id, severity, message, caused_by, began,
                   if(has_next, next_at, NULL) AS ended
            FROM (
                SELECT rule_id, service_id, to_state, severity, message, caused_by,
                       timestamp AS began, leadInFrame(timestamp) OVER w AS next_at,
                       leadInFrame(toUInt8(1)) OVER w AS has_next
                FROM {self._db()}.alert_events
                WHERE event = 'transition' AND rule_id != ''
                  AND to_state IN ('firing', 'resolved')
                  AND ({{all:UInt8}} OR service_id IN {{ids:Array(String)}})
                  AND timestamp >= {{since:DateTime64(3, 'UTC')}}
                  AND timestamp < {{end:DateTime64(3, 'UTC')}}
                WINDOW w AS (PARTITION BY rule_id, service_id ORDER BY timestamp
                             ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
            )
            WHERE to_state = 'firing' AND (NOT has_next OR next_at > {{start:DateTime64(3, 'UTC')}})
              AND began < {{before:DateTime64(3, 'UTC')}}
              AND ({{about:String}} = '' OR service_id = {{about:String}}
                   OR caused_by = {{about:String}})
              AND ({{anyone:UInt8}} OR service_id IN {{own:Array(String)}}
                   OR caused_by IN {{causes:Array(String)}})
            ORDER BY has_next, began DESC, rule_id, service_id
            LIMIT {{limit:UInt32}}""", all=int(read is None), ids=read or [],
            since=since, start=start, end=end, before=before or end, about=about,
            anyone=int(caused is None),
            own=(services or []) if caused is not None else [], causes=caused or [],
            limit=limit or 2**32 - 1)  # fmt: skip
        return [_incident({**r, "timestamp": r["began"]}, aware(r["ended"]) if r["ended"] else None)
                for r in rows]  # fmt: skip

    def inhibited(self, since: datetime, end: datetime) -> dict[str, set[str]]:
        """Each service named as an inhibition's cause by a firing in ``[since, end)`` ->
        the services whose firings named it: what :meth:`firing_periods` needs to read
        (``among``) for the periods ``caused`` by it, found in one scan of one column."""
        rows = self._query(f"""
            SELECT caused_by, groupUniqArray(service_id) AS dependants
            FROM {self._db()}.alert_events
            WHERE event = 'transition' AND rule_id != '' AND to_state = 'firing'
              AND caused_by != ''
              AND timestamp >= {{since:DateTime64(3, 'UTC')}}
              AND timestamp < {{end:DateTime64(3, 'UTC')}}
            GROUP BY caused_by""", since=since, end=end)  # fmt: skip
        return {r["caused_by"]: set(r["dependants"]) for r in rows}

    def flapping(self, since: datetime, end: datetime) -> dict[str, list[Flap]]:
        """Each service that flapped in ``[since, end)`` -> its flapping periods ``(from,
        to, span)``, oldest first: from a ``flapping`` event to the next ``flapping_end``
        (None while it still flaps; ``since`` when the first row is an end). ``span``:
        how far back the checks that made it flap went, as recorded when it was
        declared (the row's value, seconds), None on rows from before it was recorded.
        Rare rows, one scan of the event column."""
        out: dict[str, list[Flap]] = {}
        for row in self.events(since, end, ("flapping", "flapping_end")):
            at, periods = aware(row["timestamp"]), out.setdefault(row["service_id"], [])
            if row["event"] == "flapping":
                span = None if row["value"] is None else timedelta(seconds=row["value"])
                if not periods or periods[-1][1] is not None:
                    periods.append((at, None, span))
                elif periods[-1][0] == at and periods[-1][2] is None:  # its span, recorded later
                    periods[-1] = (at, None, span)
            elif periods and periods[-1][1] is None:
                periods[-1] = (periods[-1][0], at, periods[-1][2])
            elif not periods:  # flapping since before ``since``
                periods.append((since, at, None))
        return out

    def events(self, start: datetime, end: datetime, events: tuple[str, ...],
               service_ids: list[str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """``alert_events`` rows of the kinds ``events`` in ``[start, end]``, oldest first
        (of ``service_ids`` only, when given): acks and timelines of incidents."""
        cols = ", ".join(TABLES["alert_events"])
        return self._query(f"""
            SELECT {cols} FROM {self._db()}.alert_events
            WHERE event IN {{events:Array(String)}}
              AND ({{all:UInt8}} OR service_id IN {{ids:Array(String)}})
              AND timestamp >= {{start:DateTime64(3, 'UTC')}}
              AND timestamp <= {{end:DateTime64(3, 'UTC')}}
            ORDER BY timestamp, event""", events=list(events), all=int(service_ids is None),
            ids=service_ids or [], start=start, end=end)  # fmt: skip

    def incident_notices(
        self, since: datetime, keys: list[str] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Per incident key (``<alert id>@<start>``), the notices queued since ``since`` that
        told of it, oldest first: ``{notice_id, channel, kind, item_state, state, attempts,
        error, queued_at, changed_at}`` with ``state`` the newest revision's. ``keys``:
        only the notices that told of one of these (all their revisions; None: all)."""
        out: dict[str, list[dict[str, Any]]] = {}
        told = ("" if keys is None else f"""
            AND notice_id IN (
                SELECT notice_id FROM {self._db()}.notifications
                WHERE queued_at >= {{since:DateTime64(3, 'UTC')}}
                  AND hasAny(incidents, {{keys:Array(String)}}))""")  # fmt: skip
        for row in self._query(f"""
            SELECT notice_id, any(channel) AS to_channel, any(kind) AS notice_kind,
                   argMax(state, revision) AS last_state, argMax(attempts, revision) AS tries,
                   argMax(error, revision) AS last_error, min(queued_at) AS queued,
                   max(changed_at) AS changed, any(incidents) AS incs, any(item_states) AS news
            FROM {self._db()}.notifications WHERE queued_at >= {{since:DateTime64(3, 'UTC')}}
            {told}
            GROUP BY notice_id HAVING length(incs) > 0 ORDER BY queued, notice_id""",
            since=since, keys=keys or []):  # fmt: skip
            for key, news in zip(row["incs"], row["news"], strict=False):
                out.setdefault(key, []).append({
                    "notice_id": row["notice_id"], "channel": row["to_channel"],
                    "kind": row["notice_kind"], "item_state": news, "state": row["last_state"],
                    "attempts": int(row["tries"]), "error": row["last_error"],
                    "queued_at": aware(row["queued"]), "changed_at": aware(row["changed"]),
                })  # fmt: skip
        return out

    def silences_between(self, start: datetime, end: datetime) -> list[Silence]:
        """Runtime silences (newest version each) that were in force during ``[start, end]``."""
        rows = self._query(latest_silences(self._db(), """
            ends_at > {start:DateTime64(3, 'UTC')} AND starts_at < {end:DateTime64(3, 'UTC')}
            ORDER BY starts_at"""), start=start, end=end)  # fmt: skip
        return [silence(r) for r in rows]

    # -- plumbing ------------------------------------------------------------------------------
    def _db(self) -> str:
        if self.storage is None:
            raise RuntimeError("this alert log has no storage to read")
        return self.storage.database

    def _query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        assert self.storage is not None
        return self.storage.query(sql, params or None)


def covering_page(sql: str, order: str) -> str:
    """SQL: the rows of ``sql`` (with columns ``began``, ``has_next``, ``next_at``: a
    period and its end) sorted by ``order``, the first ``{limit:UInt32}`` and
    after them every other row still open (``NOT has_next``) or ending after the
    ``limit``-th row's ``began`` when that row has ended. Those are all the rows that
    overlap any time from that ``began`` on: one statement gives a page of periods and
    what a later read of the same rows from the page's oldest start would find."""
    return f"""
        SELECT * FROM (
            SELECT *, min(if(rank = {{limit:UInt32}} AND has_next, began,
                             toDateTime64('2200-01-01', 3, 'UTC'))) OVER () AS floor
            FROM (SELECT *, row_number() OVER (ORDER BY {order}) AS rank FROM ({sql})))
        WHERE rank <= {{limit:UInt32}} OR NOT has_next OR next_at > floor
        ORDER BY rank"""


def latest_silences(db: str, having: str) -> str:
    """SQL: the newest version of each runtime silence in ``db.silences`` (columns as
    :func:`silence` reads them), filtered by ``having`` (its parameters are the caller's)."""
    return f"""
        SELECT silence_id, argMax(service, updated_at) AS service,
               argMax(rule, updated_at) AS rule, argMax(starts_at, updated_at) AS starts_at,
               argMax(ends_at, updated_at) AS ends_at, argMax(author, updated_at) AS author,
               argMax(comment, updated_at) AS comment, min(created_at) AS created_at
        FROM {db}.silences GROUP BY silence_id
        HAVING {having}"""


def silence(row: dict[str, Any]) -> Silence:
    """A row of :func:`latest_silences` as a :class:`Silence`."""
    return Silence(row["silence_id"], row["service"], row["rule"], aware(row["starts_at"]),
                   aware(row["ends_at"]), author=row["author"], comment=row["comment"],
                   created_at=aware(row["created_at"]))  # fmt: skip


def to_ms(at: datetime) -> datetime:
    """``at`` cut to the millisecond: what a parameter of type DateTime64(3) holds."""
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def _incident(fired: dict[str, Any], resolved: datetime | None) -> Incident:
    cause = fired["message"] + (f" (caused by {fired['caused_by']})" if fired["caused_by"] else "")
    return Incident(fired["rule_id"], fired["service_id"], fired["severity"],
                    aware(fired["timestamp"]), resolved, cause, fired["message"],
                    fired["caused_by"])  # fmt: skip


def aware(value: datetime | str) -> datetime:
    """An aware UTC time from a stored one (inside tuples the engines return text, read
    as every stored time is: :func:`server.storage.values.parse_datetime`)."""
    if isinstance(value, str):
        return parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
