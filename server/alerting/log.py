"""The alert log: the one owner of ``alert_events``, ``silences`` and ``notifications``.

Their columns (read from ``sql/``), every write, the restore after a restart
and every read (the pages, the API, the daily report, the incidents view) go
through here; nothing else names those tables.

Durability: a write that something outside depends on is on disk before that
happens. Acks and silences before the API answers; a notice before its first
attempt; a transition that tells receivers, and flapping, before the next notice
is queued and at the latest on the next tick (:meth:`AlertLog.sync`), so a
``kill -9`` never loses what receivers were told or why.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from server.alerting.silences import Silence
from server.alerting.state import Alert
from server.core.clock import Clock, SystemClock
from server.notify.base import AlertItem, Notice
from server.notify.ledger import DeliveryState
from server.schema import Statement, Target, declared_columns, render_file, schema_files
from server.storage import Storage

HISTORY_EVENTS = ("transition", "delivery", "notify", "repeat", "ack", "recalled")
FINAL = ("delivered", "failed", "unconfirmed", "expired", "dropped")
RESULT = {"delivered": "sent", "failed": "failed", "unconfirmed": "unconfirmed",
          "expired": "expired", "dropped": "dropped"}  # fmt: skip


@functools.cache
def table_columns(table: str) -> tuple[str, ...]:
    """Column order of ``table`` as ``sql/`` declares it (one file per table)."""
    name = next(f for f in schema_files() if f.split("_", 1)[1] == f"{table}.sql")
    sql = render_file(name, Target("monitor"))[0]
    return tuple(declared_columns(Statement(name, sql, "table", table)))


TABLES = {t: table_columns(t) for t in ("alert_events", "silences", "notifications")}


class Sink(Protocol):
    """The daemon's writer (server/writer.py) or a test's list."""

    def add(self, table: str, row: tuple[Any, ...]) -> None: ...

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...

    def durable(self, tables: Mapping[str, list[tuple[Any, ...]]]) -> None: ...


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


@dataclass
class Snapshot:
    """What a restart reads back (see :meth:`AlertLog.restore`)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    flapping: dict[str, bool] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    patterns: dict[int, datetime] = field(default_factory=dict)
    statuses: dict[str, list[int]] = field(default_factory=dict)  # newest first


class AlertLog:
    """Writes through ``sink``; reads from ``storage`` (either may be absent)."""

    def __init__(
        self, sink: Sink | None, storage: Storage | None, clock: Clock | None = None
    ) -> None:
        self.sink = sink
        self.storage = storage
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []  # alert_events rows owed to the disk

    # -- writes --------------------------------------------------------------------------
    def event(
        self, at: datetime, event: str, *, rule_id: str = "", service_id: str = "",
        before: str = "", after: str = "", severity: str = "", value: float | None = None,
        message: str = "", channels: list[str] | None = None, result: str = "",
        error: str = "", caused_by: str = "", durable: bool = False,
    ) -> None:  # fmt: skip
        """One ``alert_events`` row. ``durable``: on disk by the next notice or tick."""
        row = (at, event, rule_id, service_id, before, after, severity, value, message,
               channels or [], result, error, caused_by)  # fmt: skip
        if self.sink is None:
            return
        if durable:
            with self._lock:
                self._pending.append(row)
        else:
            self.sink.add("alert_events", row)

    def alert_event(self, at: datetime, event: str, alert: Alert, before: str, after: str, *,
                    result: str, durable: bool = False) -> None:  # fmt: skip
        """A row about one alert: its rule, service, severity, value, message and cause."""
        self.event(
            at, event, rule_id=alert.rule.id, service_id=alert.service.id, before=before,
            after=after, severity=alert.rule.severity, value=alert.value, message=alert.message,
            channels=list(alert.rule.channels) if result == "queued" else [], result=result,
            caused_by=alert.hold.cause, durable=durable,
        )  # fmt: skip

    def ack(self, at: datetime, alert_id: str, who: str, *, comment: str, severity: str,
            value: float | None) -> None:  # fmt: skip
        """Durable before the caller answers the client."""
        rule_id, _, service_id = alert_id.partition(":")
        message = comment or f"acknowledged by {who}"
        self.event(at, "ack", rule_id=rule_id, service_id=service_id, before="firing",
                   after="firing", severity=severity, value=value, message=message,
                   caused_by=who, durable=True)  # fmt: skip
        self.sync()

    def silence(self, silence: Silence, now: datetime) -> None:
        """A runtime silence (or its early end), durable before the caller answers."""
        if self.sink is None:
            return
        row = (silence.id, silence.service, silence.rule, silence.start, silence.end,
               silence.author, silence.comment, silence.created_at or now, now)  # fmt: skip
        self.sink.add_durable("silences", [row])

    def sync(self) -> None:
        """Put the rows owed to the disk there (the tick calls this every second)."""
        with self._lock:
            rows, self._pending = self._pending, []
        if rows and self.sink is not None:
            self.sink.add_durable("alert_events", rows)

    # -- the delivery stages' record (server.notify.dispatcher.DeliveryLog) ---------------
    def queued(self, notice: Notice, state: DeliveryState) -> None:
        """The notice on disk before its first attempt, with the transitions it tells of
        (one fsync)."""
        if self.sink is None:
            return
        with self._lock:
            owed, self._pending = self._pending, []
        row = self._notice_row(notice, state, True)
        self.sink.durable({"alert_events": owed, "notifications": [row]})

    def outcome(self, notice: Notice, state: DeliveryState) -> None:
        if self.sink is None:
            return
        row = self._notice_row(notice, state, False)
        if state.state not in FINAL:
            self.sink.add("notifications", row)
            return
        self.sink.add_durable("notifications", [row])  # delivered: never sent again
        note = f"notice {state.notice_id}, {state.attempts} attempt(s)"
        result = RESULT[state.state]
        if not notice.items:
            self.event(state.changed_at or state.queued_at, "delivery",
                       service_id=notice.group_key, after=notice.kind, result=result,
                       message=note, channels=[notice.channel], error=state.error)  # fmt: skip
        for item in notice.items:
            self._delivery(state.changed_at or state.queued_at, notice.channel, item,
                           result=result, note=note, error=state.error)  # fmt: skip

    def dropped(self, channel: str, items: list[AlertItem], reason: str) -> None:
        now = self.clock.now()
        for item in items:
            self._delivery(max(item.since, now), channel, item, result="dropped", note=reason)

    def _delivery(self, at: datetime, channel: str, item: AlertItem, *, result: str, note: str,
                  error: str = "") -> None:  # fmt: skip
        self.event(at, "delivery", rule_id=item.rule_id, service_id=item.service_id,
                   before=item.state, after=item.state, severity=item.severity, value=item.value,
                   message=note, channels=[channel], result=result, error=error)  # fmt: skip

    @staticmethod
    def _notice_row(notice: Notice, s: DeliveryState, first: bool) -> tuple[Any, ...]:
        final = s.state in FINAL
        revision = 0 if first else s.attempts * 2 + (1 if final else 0)
        return (
            s.notice_id, revision, s.channel, s.kind, notice.group_key, s.state, s.queued_at,
            s.changed_at or s.queued_at, s.deadline, s.attempts, s.error, int(s.permanent),
            [i.alert_id for i in notice.items], [i.state for i in notice.items],
            [i.incident for i in notice.items], encode(notice) if first else "",
        )  # fmt: skip

    # -- restore ---------------------------------------------------------------------------
    def restore(self, watched: list[str], window: int, now: datetime) -> Snapshot:
        """Alert states, acks, flap states, silences, error patterns and recent status runs."""
        db, q = self._db(), self._query
        snap = Snapshot()
        snap.alerts = q(f"""
            SELECT rule_id, service_id,
                   argMaxIf(to_state, timestamp, event = 'transition') AS state,
                   maxIf(timestamp, event = 'transition') AS since,
                   maxIf(timestamp, event = 'transition' AND to_state = 'firing') AS started,
                   argMaxIf(value, timestamp, event = 'transition') AS value,
                   argMaxIf(message, timestamp, event = 'transition') AS message,
                   argMaxIf(caused_by, timestamp, event = 'ack') AS acked_by,
                   maxIf(timestamp, event = 'ack') AS acked_at,
                   maxIf(timestamp, event IN ('repeat', 'notify')
                         OR (event = 'transition' AND delivery_result = 'queued'
                             AND to_state = 'firing')) AS told_at
            FROM {db}.alert_events WHERE rule_id != '' GROUP BY rule_id, service_id
            """)  # fmt: skip
        for row in q(f"SELECT service_id, argMax(event, timestamp) AS last "
                     f"FROM {db}.alert_events WHERE event IN ('flapping', 'flapping_end') "
                     "GROUP BY service_id"):  # fmt: skip
            snap.flapping[row["service_id"]] = row["last"] == "flapping"
        for row in q(f"""
            SELECT silence_id, argMax(service, updated_at) AS service,
                   argMax(rule, updated_at) AS rule, argMax(starts_at, updated_at) AS starts_at,
                   argMax(ends_at, updated_at) AS ends_at, argMax(author, updated_at) AS author,
                   argMax(comment, updated_at) AS comment, min(created_at) AS created_at
            FROM {db}.silences GROUP BY silence_id
            HAVING ends_at > {{now:DateTime64(3, 'UTC')}}""", now=now):  # fmt: skip
            snap.silences.append(Silence(
                row["silence_id"], row["service"], row["rule"], aware(row["starts_at"]),
                aware(row["ends_at"]), author=row["author"], comment=row["comment"],
                created_at=aware(row["created_at"]),
            ))  # fmt: skip
        for row in q(f"SELECT fingerprint, min(first_seen) AS first FROM {db}.error_patterns "
                     "GROUP BY fingerprint"):  # fmt: skip
            snap.patterns[int(row["fingerprint"])] = aware(row["first"])
        if watched:  # only services some rule watches; none at all: nothing to read
            for row in q(f"""
                SELECT service_id, status_code FROM {db}.service_status
                WHERE service_id IN {{ids:Array(String)}}
                  AND timestamp > {{since:DateTime64(3, 'UTC')}}
                ORDER BY service_id, timestamp DESC LIMIT {{n:UInt32}} BY service_id""",
                ids=watched, since=now - timedelta(days=1), n=window):  # fmt: skip
                snap.statuses.setdefault(row["service_id"], []).append(int(row["status_code"]))
        return snap

    def notices(self, since: datetime) -> list[tuple[Notice, DeliveryState]]:
        """Notices queued since ``since``, oldest first, each with its newest state."""
        rows = self._query(f"""
            SELECT notice_id, argMax(state, revision) AS last_state,
                   argMax(attempts, revision) AS tries, argMax(error, revision) AS last_error,
                   argMax(permanent, revision) AS gave_up,
                   argMax(changed_at, revision) AS changed, any(channel) AS to_channel,
                   any(kind) AS notice_kind, min(queued_at) AS queued,
                   any(deadline) AS until, anyIf(notice, notice != '') AS body
            FROM {self._db()}.notifications WHERE queued_at >= {{since:DateTime64(3, 'UTC')}}
            GROUP BY notice_id HAVING body != '' ORDER BY queued, notice_id
            """, since=since)  # fmt: skip
        out = []
        for row in rows:
            state = DeliveryState(
                row["notice_id"], row["to_channel"], row["notice_kind"], aware(row["queued"]),
                aware(row["until"]), row["last_state"], aware(row["changed"]),
                int(row["tries"]), row["last_error"], permanent=bool(row["gave_up"]),
            )  # fmt: skip
            out.append((decode(row["body"]), state))
        return out

    def has_notice(self, notice_id: str) -> bool:
        rows = self._query(f"SELECT count() AS n FROM {self._db()}.notifications "
                           "WHERE notice_id = {id:String}", id=notice_id)  # fmt: skip
        return bool(rows and int(rows[0]["n"]))

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

    def states(self, now: datetime) -> list[dict[str, Any]]:
        """Latest state per alert (pending, firing, or resolved within a day)."""
        return self._query(f"""
            SELECT rule_id, service_id,
                   argMaxIf(to_state, timestamp, event = 'transition') AS state,
                   maxIf(timestamp, event = 'transition') AS since,
                   maxIf(timestamp, event = 'transition' AND to_state = 'firing') AS started,
                   argMaxIf(severity, timestamp, event = 'transition') AS severity,
                   argMaxIf(value, timestamp, event = 'transition') AS value,
                   argMaxIf(message, timestamp, event = 'transition') AS message,
                   argMaxIf(delivery_result, timestamp, event = 'transition') AS result,
                   argMaxIf(caused_by, timestamp, event = 'transition') AS caused_by
            FROM {self._db()}.alert_events WHERE rule_id != ''
            GROUP BY rule_id, service_id
            HAVING state IN ('pending', 'firing')
                OR (state = 'resolved' AND since > {{day:DateTime64(3, 'UTC')}})""",
            day=now - timedelta(days=1))  # fmt: skip

    def deliveries(self, since: datetime) -> dict[str, list[dict[str, Any]]]:
        """Per alert id, the newest notice per channel queued since ``since`` and its state:
        ``{alert_id: [{channel, state, item_state, incident, attempts, error, ...}]}``."""
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
                FROM {self._db()}.notifications WHERE queued_at >= {{since:DateTime64(3, 'UTC')}}
                GROUP BY notice_id HAVING length(ids) > 0
            ) ARRAY JOIN ids AS alert_id, states AS item_state, incs AS incident
            GROUP BY alert_id, to_channel ORDER BY alert_id, channel""", since=since)  # fmt: skip
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

    def incidents(
        self, start: datetime, end: datetime, service_id: str | None = None,
        lookback: timedelta = timedelta(days=30),
    ) -> list[Incident]:  # fmt: skip
        """Firing periods overlapping ``[start, end)``, oldest first (a start is looked
        for up to ``lookback`` before ``start``)."""
        rows = self._query(f"""
            SELECT timestamp, rule_id, service_id, to_state, severity, message, caused_by
            FROM {self._db()}.alert_events
            WHERE event = 'transition' AND rule_id != '' AND to_state IN ('firing', 'resolved')
              AND ({{sid:String}} = '' OR service_id = {{sid:String}})
              AND timestamp >= {{since:DateTime64(3, 'UTC')}}
              AND timestamp < {{end:DateTime64(3, 'UTC')}}
            ORDER BY rule_id, service_id, timestamp""",
            sid=service_id or "", since=start - lookback, end=end)  # fmt: skip
        out: list[Incident] = []
        opened: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            key = (row["rule_id"], row["service_id"])
            if row["to_state"] == "firing":
                opened.setdefault(key, row)
            elif key in opened:
                out.append(_incident(opened.pop(key), aware(row["timestamp"])))
        out += [_incident(row, None) for row in opened.values()]
        return sorted((i for i in out if i.end is None or i.end > start), key=lambda i: i.start)

    def firing_periods(
        self, start: datetime, end: datetime, *, since: datetime, about: str = "",
        services: list[str] | None = None, limit: int = 0,
    ) -> list[Incident]:  # fmt: skip
        """Firing periods overlapping ``[start, end)`` whose firing is after ``since``,
        paired in ClickHouse (one row each: converting rows is what costs), open ones
        first, then newest first; a firing ends at the alert's next transition.

        ``about``: only periods of that service or caused by it; ``services``: only
        those services'; ``limit``: at most that many (0: all)."""
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
              AND ({{about:String}} = '' OR service_id = {{about:String}}
                   OR caused_by = {{about:String}})
            ORDER BY has_next, began DESC, rule_id, service_id
            LIMIT {{limit:UInt32}}""", all=int(services is None), ids=services or [],
            since=since, start=start, end=end, about=about, limit=limit or 2**32 - 1)  # fmt: skip
        return [_incident({**r, "timestamp": r["began"]}, aware(r["ended"]) if r["ended"] else None)
                for r in rows]  # fmt: skip

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

    def incident_notices(self, since: datetime) -> dict[str, list[dict[str, Any]]]:
        """Per incident key (``<alert id>@<start>``), the notices queued since ``since`` that
        told of it, oldest first: ``{notice_id, channel, kind, item_state, state, attempts,
        error, queued_at, changed_at}`` with ``state`` the newest revision's."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self._query(f"""
            SELECT notice_id, any(channel) AS to_channel, any(kind) AS notice_kind,
                   argMax(state, revision) AS last_state, argMax(attempts, revision) AS tries,
                   argMax(error, revision) AS last_error, min(queued_at) AS queued,
                   max(changed_at) AS changed, any(incidents) AS incs, any(item_states) AS news
            FROM {self._db()}.notifications WHERE queued_at >= {{since:DateTime64(3, 'UTC')}}
            GROUP BY notice_id HAVING length(incs) > 0 ORDER BY queued, notice_id""",
            since=since):  # fmt: skip
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
        rows = self._query(f"""
            SELECT silence_id, argMax(service, updated_at) AS service,
                   argMax(rule, updated_at) AS rule, argMax(starts_at, updated_at) AS starts_at,
                   argMax(ends_at, updated_at) AS ends_at, argMax(author, updated_at) AS author,
                   argMax(comment, updated_at) AS comment, min(created_at) AS created_at
            FROM {self._db()}.silences GROUP BY silence_id
            HAVING ends_at > {{start:DateTime64(3, 'UTC')}}
               AND starts_at < {{end:DateTime64(3, 'UTC')}} ORDER BY starts_at""",
            start=start, end=end)  # fmt: skip
        return [Silence(r["silence_id"], r["service"], r["rule"], aware(r["starts_at"]),
                        aware(r["ends_at"]), author=r["author"], comment=r["comment"],
                        created_at=aware(r["created_at"])) for r in rows]  # fmt: skip

    # -- plumbing ------------------------------------------------------------------------------
    def _db(self) -> str:
        if self.storage is None:
            raise RuntimeError("this alert log has no storage to read")
        return self.storage.database

    def _query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        assert self.storage is not None
        return self.storage.query(sql, params or None)


def _incident(fired: dict[str, Any], resolved: datetime | None) -> Incident:
    cause = fired["message"] + (f" (caused by {fired['caused_by']})" if fired["caused_by"] else "")
    return Incident(fired["rule_id"], fired["service_id"], fired["severity"],
                    aware(fired["timestamp"]), resolved, cause, fired["message"],
                    fired["caused_by"])  # fmt: skip


def aware(value: datetime | str) -> datetime:
    """An aware UTC time from a stored one (inside tuples the engines return text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def encode(notice: Notice) -> str:
    """A notice as JSON, for the outbox row it is resumed from."""
    data = asdict(notice)
    return json.dumps(data, default=lambda v: v.isoformat(), separators=(",", ":"))


def decode(text: str) -> Notice:
    data = json.loads(text)
    items = []
    for raw in data.pop("items"):
        raw["since"] = datetime.fromisoformat(raw["since"])
        raw["started"] = datetime.fromisoformat(raw["started"]) if raw["started"] else None
        items.append(AlertItem(**raw))
    data["created"] = datetime.fromisoformat(data["created"])
    return Notice(items=items, **data)
