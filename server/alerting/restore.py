"""What a restart puts back from the alert log's snapshot (:meth:`AlertLog.restore`).

Split from :mod:`.engine` (which calls these under its lock, then reindexes): which
stored state this run has not superseded, and from when stored notices may still
matter. Functions of the snapshot and the engine's tables, so each reads alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from checkers.base import Status
from server.alerting import notices
from server.alerting.history import History
from server.alerting.log import Snapshot, aware
from server.alerting.silences import Silences
from server.alerting.state import Alert, AlertState, alert_id, restore_state
from server.alerting.telling import RECENT_RESOLVED


def notices_since(snap: Snapshot, alerts: Mapping[str, Alert], live: Iterable[Alert],
                  now: datetime, deadline: timedelta) -> datetime:  # fmt: skip
    """Since when stored notices may still matter: the oldest incident start (stored for
    an alert still configured, or live), at most a day (:data:`RECENT_RESOLVED`) and a
    delivery ``deadline`` back from ``now``."""
    began = [aware(r["started"]) for r in snap.alerts if r["state"] not in ("", "inactive")
             and alert_id(r["rule_id"], r["service_id"]) in alerts]  # fmt: skip
    stored = [t for t in began if t.year > 1970]  # 1970: never fired
    running = [a.started for a in live if a.started is not None]
    return min([*stored, *running, now - RECENT_RESOLVED - deadline])


def put_back(snap: Snapshot, alerts: Mapping[str, Alert], histories: Mapping[str, History],
             silences: Silences, book: dict[int, datetime]) -> list[Alert]:  # fmt: skip
    """Put back the stored state this run has not superseded; returns the alerts
    restored. Services with a result this run keep their live runs and flap state;
    alerts that moved this run keep their state. Silences join ``silences``, error
    patterns first seen join ``book`` (fingerprint -> first seen)."""
    fresh = {sid: h for sid, h in histories.items() if h.first_result is None}
    for sid, codes in snap.statuses.items():
        if sid in fresh:
            fresh[sid].seed([Status(c) for c in reversed(codes)], None)
    for sid, flapping in snap.flapping.items():
        if sid in fresh:
            fresh[sid].flapping = flapping
    for silence in snap.silences:
        silences.add(silence)
    for fp, first in snap.patterns.items():
        book.setdefault(fp, first)
    restored: list[Alert] = []
    for row in snap.alerts:
        alert = alerts.get(alert_id(row["rule_id"], row["service_id"]))
        if alert is None or alert.since is not None or not restore_state(alert, row):
            continue
        restored.append(alert)
        if alert.state is AlertState.FIRING:
            alert.annotations = notices.render_annotations(alert, histories[alert.service.id])
    return restored
