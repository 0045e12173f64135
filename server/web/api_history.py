"""Uptime over any period and README badges (``/api/v1``, documented in the OpenAPI file).

``GET /api/v1/services/<id>/uptime?from=&to=`` (or ``range=``) counts the checks in
the period exactly (:mod:`server.analytics.uptime`) and lists its UTC days.
``GET /api/v1/services/<id>/badge`` answers in shields.io's endpoint-badge schema
(https://shields.io/badges/endpoint-badge: ``schemaVersion``, ``label``,
``message``, ``color``), so a README can show a service's status, uptime or SLO
through ``https://img.shields.io/endpoint?url=…``. Badges of services on the
status page are as public as the status page; others follow the read rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from server.analytics.slo import availability
from server.analytics.uptime import counts, daily, days
from server.config.types import parse_duration
from server.web import slo_view
from server.web.api import requested_range, service_or_404
from server.web.auth import challenge, principal
from server.web.bars import band
from server.web.charts import pct
from server.web.context import current as context
from server.web.errors import ApiError
from server.web.status_view import groups

history = Blueprint("history", __name__, url_prefix="/api/v1")
MAX_BADGE_PERIOD = timedelta(days=365)
STATUS_COLOURS = {
    "OK": "brightgreen", "DEGRADED": "yellow", "FAILED": "red", "STARTING": "blue",
    "STOPPED": "lightgrey", "UNKNOWN": "orange",
}  # fmt: skip
BAND_COLOURS = {
    "u-full": "brightgreen", "u-high": "green", "u-mid": "yellowgreen", "u-low": "orange",
    "u-down": "red", "u-none": "lightgrey",
}  # fmt: skip
# What each colour name above is sent as: shields.io's named colours put white text on
# backgrounds it reads at 1.95:1 (yellow) to 4.38:1 (brightgreen); these read at 4.5:1
# or more against white, the text shields draws on a dark background (WCAG AA).
SHADES = {
    "brightgreen": "#1e7b1e", "green": "#2e7d32", "yellowgreen": "#4c7a00",
    "yellow": "#8a5a00", "orange": "#a84800", "red": "#c62828", "blue": "#1f5fa8",
    "lightgrey": "#595959",
}  # fmt: skip


@history.get("/services/<service_id>/uptime")
def uptime(service_id: str) -> Response:
    """Checks, checks up and uptime % in the period, and per UTC day it touches, each day
    clipped to the period: the days' checks add up to the period's. Whole days come from
    the daily summary, the partial first and last days are counted exactly (one query)."""
    ctx = context()
    service_or_404(service_id)
    tr = requested_range(default="30d")
    first, last = tr.start.date(), (tr.end - timedelta(microseconds=1)).date()
    shown = days(last, (last - first).days + 1)
    partial = {d: p for d in {first, last} if (p := _clipped(d, tr.start, tr.end)) != _whole(d)}
    periods = [(tr.start, tr.end), *partial.values()]
    found, *edges = counts(ctx.storage, [service_id], periods)[service_id]
    per_day = daily(ctx.storage, {service_id: [service_id]}, first, last).by_day.get(service_id, {})
    per_day.update(zip(partial, edges, strict=True))
    return jsonify({
        "service_id": service_id,
        "range": {"from": tr.start.isoformat(), "to": tr.end.isoformat()},
        "checks": found.total, "up": found.good, "uptime": _pct(availability(found)),
        "days": [_day(d, per_day.get(d)) for d in shown],
    })  # fmt: skip


def _whole(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _clipped(day: date, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The part of UTC ``day`` inside ``[start, end)``."""
    a, b = _whole(day)
    return max(a, start), min(b, end)


def _day(day: date, found: Any) -> dict[str, Any]:
    if found is None:
        return {"day": day.isoformat(), "checks": 0, "up": 0, "uptime": None}
    return {"day": day.isoformat(), "checks": found.total, "up": found.good,
            "uptime": _pct(availability(found))}  # fmt: skip


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@history.get("/services/<service_id>/badge")
def badge(service_id: str) -> Response:
    """A shields.io endpoint badge: ``?metric=status`` (default), ``uptime`` or ``slo``.

    ``period`` (uptime only, default 30d) is a duration up to 365 days.
    """
    ctx = context()
    _badge_access(service_id)
    paused = ctx.reader.disabled(service_id)
    if paused is not None:  # a paused monitor's badge says so, as shields.io badges do
        return jsonify({"schemaVersion": 1, "label": paused, "message": "disabled",
                        "color": SHADES["lightgrey"]})  # fmt: skip
    view = service_or_404(service_id)
    metric = request.args.get("metric", "status")
    if metric == "status":
        word = view.status if view.checked else "no data"
        body = {"label": view.label, "message": word.lower(),
                "color": STATUS_COLOURS.get(word, "lightgrey")}  # fmt: skip
    elif metric == "uptime":
        raw = request.args.get("period", "30d")
        try:
            period = parse_duration(raw)
        except ValueError:
            raise ApiError(
                400, f'period: expected a duration like "30d", got {raw[:40]!r}'
            ) from None
        if not timedelta(0) < period <= MAX_BADGE_PERIOD:
            raise ApiError(400, "period: expected more than 0 and at most 365d")
        now = ctx.clock.now()
        found = counts(ctx.storage, [service_id], [(now - period, now)])[service_id][0]
        value = availability(found)
        message = "no data" if value is None else pct(value)
        body = {"label": f"uptime {raw}", "message": message, "color": BAND_COLOURS[band(value)[0]]}
    elif metric == "slo":
        if view.slo is None:
            raise ApiError(404, f"service {service_id!r} has no slo configured")
        message, colour = slo_view.badge(view.slo)
        body = {"label": f"SLO {slo_view.target(view.slo)}", "message": message, "color": colour}
    else:
        raise ApiError(400, "metric: one of status, uptime, slo")
    return jsonify({"schemaVersion": 1, **body, "color": SHADES[body["color"]]})


def _badge_access(service_id: str) -> None:
    """With ``public_reads: false``, badges are open only for services on the status page."""
    ctx = context()
    auth = ctx.config.dashboard.auth
    if auth.public_reads or auth.type == "none" or principal(auth) is not None:
        return
    views = ctx.reader.services(ctx.clock.now(), history=False)
    if not any(v.id == service_id for g in groups(ctx.config, views) for v in g.members):
        raise ApiError(401, "authentication required", challenge(auth))
