"""The alert log: the one owner of ``alert_events``, ``silences`` and ``notifications``.

Their columns (read from ``sql/``), every write, the restore after a restart
and every read (the pages, the API, the daily report, the incidents view) go
through here; nothing else names those tables. This module holds the writes,
the outbox the delivery stages record in, and the restore; the reads for pages
and reports live in :mod:`server.alerting.log_reads`, which :class:`AlertLog`
inherits, so callers still ask the one alert log.

Durability: a write that something outside depends on is on disk before that
happens. Acks and silences before the API answers; a notice before its first
attempt; a transition that tells receivers, and flapping, before the next notice
is queued and at the latest on the next tick (:meth:`AlertLog.sync`), so a
``kill -9`` never loses what receivers were told or why.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.alerting.log_reads import (
    TABLES,
    AlertReads,
    Incident,
    aware,
    latest_per_alert,
    latest_silences,
    silence,
    table_columns,
)
from server.alerting.silences import Silence
from server.alerting.state import Alert
from server.core.clock import Clock, SystemClock
from server.notify.base import AlertItem, Notice
from server.notify.ledger import DeliveryState
from server.storage import Storage

# The alert log is the one place other modules ask about these tables: the column
# lists and the helpers its reads return are part of its face.
__all__ = ["TABLES", "AlertLog", "Incident", "Sink", "Snapshot", "aware", "decode", "encode",
           "table_columns"]  # fmt: skip

RETIRED = "no longer in the configuration: its rule or service was removed or changed"
# the message of a ``flapping`` row the flap replay adds to an older one of the engine's
# (same instant, no span) to record its span: no news, never told
# (:mod:`server.analytics.flap_replay`, :meth:`AlertReads.flapping` merges the two)
SPAN = "its span, recorded by the replay"
FINAL = ("delivered", "failed", "unconfirmed", "expired", "dropped")
RESULT = {"delivered": "sent", "failed": "failed", "unconfirmed": "unconfirmed",
          "expired": "expired", "dropped": "dropped"}  # fmt: skip


class Sink(Protocol):
    """The daemon's writer (server/writer.py) or a test's list."""

    def add(self, table: str, row: tuple[Any, ...]) -> None: ...

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...

    def durable(self, tables: Mapping[str, list[tuple[Any, ...]]]) -> None: ...


@dataclass
class Snapshot:
    """What a restart reads back (see :meth:`AlertLog.restore`)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    flapping: dict[str, bool] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    patterns: dict[int, datetime] = field(default_factory=dict)
    statuses: dict[str, list[int]] = field(default_factory=dict)  # newest first


def event_row(
    at: datetime, event: str, *, rule_id: str = "", service_id: str = "", before: str = "",
    after: str = "", severity: str = "", value: float | None = None, message: str = "",
    channels: list[str] | None = None, result: str = "", error: str = "", caused_by: str = "",
) -> tuple[Any, ...]:  # fmt: skip
    """One ``alert_events`` row in the order of :data:`TABLES` (the one place that
    order is written: :meth:`AlertLog.event` and the flap replay build rows with it)."""
    return (at, event, rule_id, service_id, before, after, severity, value, message,
            channels or [], result, error, caused_by)  # fmt: skip


class AlertLog(AlertReads):
    """Writes through ``sink``; reads from ``storage`` (either may be absent); the reads
    for pages and reports are inherited from :class:`~server.alerting.log_reads.AlertReads`."""

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
        row = event_row(at, event, rule_id=rule_id, service_id=service_id, before=before,
                        after=after, severity=severity, value=value, message=message,
                        channels=channels, result=result, error=error,
                        caused_by=caused_by)  # fmt: skip
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

    def retired(self, at: datetime, rule_id: str, service_id: str, severity: str) -> None:
        """A firing alert that left the configuration (its rule removed, renamed or
        disabled, or no longer selecting its service; the service removed or disabled)
        is resolved ``at``, so its firing period, and the incident it is in, ends rather
        than staying open with nothing left to end it. Nobody is told: the dispatcher
        forgets what it told of alerts that left. Durable by the next tick."""
        self.event(at, "transition", rule_id=rule_id, service_id=service_id, before="firing",
                   after="resolved", severity=severity, message=RETIRED, durable=True)  # fmt: skip

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
    def restore(self, watched: list[str], window: int, now: datetime,
                reach: timedelta) -> Snapshot:  # fmt: skip
        """Alert states, acks, flap states, silences, error patterns and recent status runs:
        the last ``window`` statuses of each of ``watched`` in the ``reach`` before ``now``
        (the engine's: twice its longest flap span, a window of checks of a run stopped
        up to a window's time before; older ones judge no flapping)."""
        db, q = self._db(), self._query
        snap = Snapshot()
        snap.alerts = q(latest_per_alert(db, {
            "acked_by": "argMaxIf(caused_by, timestamp, event = 'ack')",
            "acked_at": "maxIf(timestamp, event = 'ack')",
            "told_at": "maxIf(timestamp, event IN ('repeat', 'notify') OR (event = 'transition'"
                       " AND delivery_result = 'queued' AND to_state = 'firing'))",
        }))  # fmt: skip
        for row in q(f"SELECT service_id, argMax(event, timestamp) AS last "
                     f"FROM {db}.alert_events WHERE event IN ('flapping', 'flapping_end') "
                     "GROUP BY service_id"):  # fmt: skip
            snap.flapping[row["service_id"]] = row["last"] == "flapping"
        having = "ends_at > {now:DateTime64(3, 'UTC')}"
        snap.silences = [silence(r) for r in q(latest_silences(db, having), now=now)]
        for row in q(f"SELECT fingerprint, min(first_seen) AS first FROM {db}.error_patterns "
                     "GROUP BY fingerprint"):  # fmt: skip
            snap.patterns[int(row["fingerprint"])] = aware(row["first"])
        if watched:  # the services the engine judges (every enabled one); none: no read
            for row in q(f"""
                SELECT service_id, status_code FROM {db}.service_status
                WHERE service_id IN {{ids:Array(String)}}
                  AND timestamp > {{since:DateTime64(3, 'UTC')}}
                ORDER BY service_id, timestamp DESC LIMIT {{n:UInt32}} BY service_id""",
                ids=watched, since=now - reach, n=window):  # fmt: skip
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
