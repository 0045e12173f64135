"""Alerts as the pages and the API show them, from the engine or (standalone) the alert log.

Each alert carries ``notified`` (a channel was delivered its current news: the
firing while it fires, the resolve once resolved) and ``delivery``, one entry
per channel: queued, retrying (since when, attempts, the last error, the next
attempt), delivered (when) or failed (permanently or past the deadline, why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from server.alerting.log import aware
from server.alerting.state import alert_id
from server.core.humanize import moment, number
from server.notify.base import incident_key
from server.web.context import WebContext

ORDER = {"firing": 0, "pending": 1, "resolved": 2}
HELD = ("silenced", "inhibited", "flapping")


def current_alerts(ctx: WebContext, service_id: str | None = None) -> list[dict[str, Any]]:
    """The live alerts (of one service with ``service_id``), firing first, then pending,
    then resolved, each group oldest first."""
    if ctx.alerts is not None:
        items = ctx.alerts.alerts()
        if service_id is not None:
            items = [a for a in items if a["service_id"] == service_id]
    else:
        items = _stored(ctx, service_id)
    items.sort(key=lambda a: (ORDER.get(a["state"], 3), a.get("since") or ""))
    return items


def _stored(ctx: WebContext, service_id: str | None = None) -> list[dict[str, Any]]:
    """The standalone dashboard's view: the newest state per alert from the alert log
    (of one service's alerts only, read by the log's sort key, with ``service_id``)."""
    now = ctx.clock.now()
    rows = ctx.alert_log.states(now, service_id)
    if not rows and service_id is not None:
        return []
    starts = [aware(r["started"]) for r in rows if r["started"].year > 1970]
    ids = None if service_id is None else [alert_id(r["rule_id"], r["service_id"]) for r in rows]
    deliveries = ctx.alert_log.deliveries(min([*starts, now - timedelta(days=1)]), ids)
    out = []
    for r in rows:
        aid = alert_id(r["rule_id"], r["service_id"])
        started = aware(r["started"])
        incident = incident_key(aid, started)
        current = [d for d in deliveries.get(aid, []) if d["incident"] == incident]
        news = "firing" if r["state"] == "firing" else "resolved"
        since: datetime = aware(r["since"])
        out.append({
            "id": aid,
            "rule_id": r["rule_id"],
            "rule_name": r["rule_id"],
            "service_id": r["service_id"],
            "state": r["state"],
            "severity": r["severity"],
            "since": since.isoformat(),
            "since_text": moment(since),
            "started": started.isoformat() if started.year > 1970 else None,
            "value": r["value"],
            "value_text": number(r["value"]),
            "message": r["message"],
            "suppressed": r["result"] if r["result"] in HELD else None,
            "caused_by": r["caused_by"] or None,
            "notified": any(
                d["state"] == "delivered" and d["item_state"] == news for d in current
            ),
            "delivery": current,
        })  # fmt: skip
    return out


def delivery_text(entry: dict[str, Any]) -> str:
    """One channel's delivery state for people: ``delivered 2026-… UTC``, ``retrying since …``."""
    state = entry["state"]
    changed = moment(datetime.fromisoformat(entry["changed_at"]))
    if state == "delivered":
        return f"delivered {changed}"
    if state == "retrying":
        queued = moment(datetime.fromisoformat(entry["queued_at"]))
        return f"retrying since {queued} ({entry['attempts']} attempts): {entry['error']}"
    if state == "failed":
        how = "permanently" if entry.get("permanent") else "past the delivery deadline"
        return f"failed {how} {changed}: {entry['error']}"
    if state == "unconfirmed":
        return f"unconfirmed {changed} (an attempt may have been received): {entry['error']}"
    if state == "expired":
        return f"expired {changed}: its delivery deadline passed while Lightbulb was down"
    if state == "dropped":
        return "not sent (its firing was never delivered)"
    if state == "sending":
        return "sending (attempt in flight)"
    return "queued"


@dataclass
class ChannelDelivery:
    """One channel's share of the live alerts' news: how many notices stand in each state,
    and the newest error of those retrying and of those failed (with the alert it was for)."""

    channel: str
    states: dict[str, int] = field(default_factory=dict)  # queued/retrying/delivered/...
    retrying: dict[str, Any] | None = None  # the newest retrying entry, with "alert"
    failed: dict[str, Any] | None = None  # the newest failed entry, with "alert"

    def count(self, state: str) -> int:
        return self.states.get(state, 0)


def by_channel(items: list[dict[str, Any]], channels: list[str]) -> list[ChannelDelivery]:
    """Every configured channel (in config order; others seen in entries after), with the
    delivery state of the live alerts' current news to it."""
    out = {name: ChannelDelivery(name) for name in channels}
    for item in items:
        for entry in item.get("delivery", []):
            row = out.setdefault(entry["channel"], ChannelDelivery(entry["channel"]))
            state = entry["state"]
            row.states[state] = row.states.get(state, 0) + 1
            if state in ("retrying", "failed"):
                newest = getattr(row, state)
                if newest is None or entry["changed_at"] > newest["changed_at"]:
                    setattr(row, state, {**entry, "alert": item.get("id", "")})
    return list(out.values())
