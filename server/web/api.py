"""The JSON API (``/api/v1``), described by :mod:`server.web.openapi`.

Every parameter is checked here and reaches SQL only as a typed parameter;
bad input is a 4xx with ``{"error": ...}``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from server.config.types import parse_duration
from server.core import selectors
from server.core.times import parse_instant
from server.web.alerts_view import current_alerts
from server.web.auth import require_user
from server.web.context import current as context
from server.web.errors import ApiError
from server.web.openapi import openapi_document
from server.web.queries import LOG_LEVELS
from server.web.timerange import time_range

MAX_SILENCE = timedelta(days=365)
MAX_TEXT = 1000
MAX_LOGS = 1000
MAX_DEPTH = 32  # of a JSON body


api = Blueprint("api", __name__, url_prefix="/api/v1")


def service_or_404(service_id: str) -> Any:
    ctx = context()
    views = ctx.reader.services(ctx.clock.now(), only=service_id)
    if not views:
        raise ApiError(404, ctx.reader.absent(service_id))
    return views[0]


def requested_range(default: str = "24h") -> Any:
    ctx = context()
    try:
        return time_range(
            ctx.clock.now(),
            range_=request.args.get("range"),
            start=request.args.get("from"),
            end=request.args.get("to"),
            step=request.args.get("step"),
            default=default,
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@api.get("/services")
def services() -> Response:
    ctx = context()
    views = ctx.reader.services(ctx.clock.now())
    return jsonify({"services": [v.as_dict() for v in views]})


@api.get("/services/<service_id>")
def service(service_id: str) -> Response:
    ctx = context()
    view = service_or_404(service_id)
    body = view.as_dict()
    body["depends_on"] = [
        r.target for r in ctx.config.relations if r.source == service_id and r.enabled
    ]
    body["dependents"] = [
        r.source for r in ctx.config.relations if r.target == service_id and r.enabled
    ]
    return jsonify(body)


@api.get("/services/<service_id>/status")
def status(service_id: str) -> Response:
    ctx = context()
    service_or_404(service_id)
    tr = requested_range()
    buckets = ctx.reader.status_buckets(service_id, tr)
    return jsonify({"service_id": service_id, "range": tr.as_dict(),
                    "source": "service_status_hourly" if tr.hourly else "service_status",
                    "buckets": [_jsonable(b) for b in buckets]})  # fmt: skip


@api.get("/services/<service_id>/metrics")
def metrics(service_id: str) -> Response:
    ctx = context()
    service_or_404(service_id)
    tr = requested_range()
    name = request.args.get("name", "")
    if not name:
        names = ctx.reader.series_names(service_id, tr)
        return jsonify({"service_id": service_id, "names": names})
    if len(name) > 200:
        raise ApiError(400, "name: at most 200 characters")
    series = ctx.reader.metric_series(service_id, name, tr)
    series["points"] = [_jsonable(p) for p in series["points"]]
    return jsonify({"service_id": service_id, "range": tr.as_dict(), **series})


@api.get("/services/<service_id>/logs")
def logs(service_id: str) -> Response:
    ctx = context()
    service_or_404(service_id)
    levels = [lv.strip().upper() for lv in request.args.get("level", "").split(",") if lv]
    unknown = [lv for lv in levels if lv not in LOG_LEVELS]
    if unknown:
        raise ApiError(400, f"level: unknown {unknown[0]!r}; one of {', '.join(LOG_LEVELS)}")
    text = request.args.get("q", "")
    if len(text) > 200:
        raise ApiError(400, "q: at most 200 characters")
    limit = _int_arg("limit", 100, 1, MAX_LOGS)
    rows = ctx.reader.logs(service_id, levels, text, limit)
    return jsonify({"service_id": service_id, "logs": [_jsonable(r) for r in rows]})


@api.get("/errors")
def errors() -> Response:
    ctx = context()
    tr = requested_range()
    service = request.args.get("service", "")
    if len(service) > 200:
        raise ApiError(400, "service: at most 200 characters")
    limit = _int_arg("limit", 50, 1, 500)
    rows = ctx.reader.top_errors(service or None, tr, limit)
    return jsonify({"range": tr.as_dict(), "patterns": [_jsonable(r) for r in rows]})


@api.get("/alerts")
def alerts() -> Response:
    ctx = context()
    state = request.args.get("state")
    items = current_alerts(ctx)
    if state:
        items = [a for a in items if state in (a["state"], a.get("suppressed"))]
    return jsonify({"alerts": items})


@api.post("/alerts/<path:alert_id>/ack")
def ack(alert_id: str) -> Response:
    ctx = context()
    who = require_user(ctx.config.dashboard.auth)
    engine = ctx.engine()
    body = _json_body()
    alert = engine.acknowledge(alert_id, who, _text(body, "comment"))
    if alert is None:
        raise ApiError(404, f"no firing alert {alert_id!r}")
    ctx.make_durable()
    return jsonify(alert.as_dict())


@api.get("/silences")
def silences() -> Response:
    ctx = context()
    engine = ctx.alerts
    items = [s.as_dict() for s in engine.silences.all()] if engine else []
    return jsonify({"silences": items})


@api.post("/silences")
def create_silence() -> tuple[Response, int]:
    ctx = context()
    who = require_user(ctx.config.dashboard.auth)
    engine = ctx.engine()
    body = _json_body()
    # selectors as sent: "hdb\n" is refused (a control character), never stripped to "hdb"
    service, rule = _text(body, "service", strip=False), _text(body, "rule", strip=False)
    if not service and not rule:
        raise ApiError(400, "give service and/or rule to match")
    for name, selector, stacks in (("service", service, True), ("rule", rule, False)):
        wrong = selectors.problem(selector, stacks) if selector else None
        if wrong is not None:
            raise ApiError(400, f"{name}: {wrong}")
    start = _time(body, "starts_at") or ctx.clock.now()
    end = _time(body, "ends_at")
    if "duration" in body:
        try:
            end = start + parse_duration(body["duration"])
        except ValueError as exc:
            raise ApiError(400, f"duration: {exc}") from None
    if end is None:
        raise ApiError(400, 'give duration (like "2h") or ends_at')
    if end <= start or end - start > MAX_SILENCE:
        raise ApiError(400, "ends_at must be after starts_at and within 365 days")
    silence = engine.add_silence(
        service=service, rule=rule, start=start, end=end,
        author=_text(body, "author") or who, comment=_text(body, "comment"),
    )  # fmt: skip
    ctx.make_durable()
    return jsonify(silence.as_dict()), 201


@api.delete("/silences/<silence_id>")
def delete_silence(silence_id: str) -> Response:
    ctx = context()
    require_user(ctx.config.dashboard.auth)
    silence = ctx.engine().expire_silence(silence_id)
    if silence is None:
        raise ApiError(404, f"no active API silence {silence_id!r}")
    ctx.make_durable()
    return jsonify(silence.as_dict())


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # ASCII digits only, as every number the API and config read: int() also takes
    # "\u0661\u0660", "1_0", " 10" and "+10"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise ApiError(
            400, f"{name}: expected a whole number in ASCII digits 0-9, got {raw[:40]!r}"
        )
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(400, f"{name}: expected {low} to {high}, got {value}")
    return value


def _json_body() -> dict[str, Any]:
    """JSON only: a cross-site form cannot send it without a preflight (the CSRF guard).

    Whatever is accepted here can be stored and shown later, so the body must be
    valid UTF-8 all through (JSON's ``\\ud800`` escape spells a lone surrogate that
    no page or table can hold) and nested at most :data:`MAX_DEPTH` deep.
    """
    if not request.is_json:
        raise ApiError(415, "send Content-Type: application/json")
    try:
        body = json.loads(request.get_data(cache=True))
    except RecursionError:
        raise ApiError(400, f"body: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise ApiError(400, "body: expected a JSON object (the body is not valid JSON)") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    problem = _unstorable(body, 0)
    if problem:
        raise ApiError(400, f"body: {problem}")
    return body


def _unstorable(value: Any, depth: int) -> str | None:
    """Why ``value`` cannot be kept (too deep, not UTF-8), or None."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "strings must be valid UTF-8 (a lone surrogate such as \\ud800 is not)"
        return None
    children = list(value.items()) if isinstance(value, dict) else value
    if isinstance(children, list):
        for child in children:
            parts = child if isinstance(value, dict) else (child,)
            for part in parts:
                problem = _unstorable(part, depth + 1)
                if problem:
                    return problem
    return None


def _text(body: dict[str, Any], key: str, *, strip: bool = True) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ApiError(400, f"{key}: expected a string of at most {MAX_TEXT} characters")
    return value.strip() if strip else value


def _time(body: dict[str, Any], key: str) -> datetime | None:
    raw = body.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ApiError(400, f"{key}: expected an RFC 3339 time as a string")
    try:
        return parse_instant(raw, key)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
