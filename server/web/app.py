"""Flask app: the JSON API for alerts and silences, health endpoints.

Routes read the engine's in-memory state (it is the source of truth for what
is firing now); silences created here are persisted by the engine through the
writer, so they survive restarts and ClickHouse outages alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from server.alerting.engine import AlertEngine
from server.config.models import DashboardConfig
from server.config.types import parse_duration
from server.web.auth import challenge, principal

MAX_SILENCE = timedelta(days=365)
MAX_TEXT = 1000


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def create_app(engine: AlertEngine, dashboard: DashboardConfig) -> Flask:
    app = Flask("lightbulb", template_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int, dict[str, str]]:
        return jsonify({"error": exc.message}), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def require_user() -> str:
        if dashboard.auth.type == "none":
            raise ApiError(
                403, "changes need dashboard.auth (basic or bearer) configured in the YAML"
            )
        who = principal(request, dashboard.auth)
        if who is None:
            raise ApiError(401, "authentication required", challenge(dashboard.auth))
        return who

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/api/v1/alerts")
    def alerts() -> Response:
        state = request.args.get("state")
        items = engine.alerts()
        if state:
            items = [a for a in items if a["state"] == state or a["suppressed"] == state]
        items.sort(key=lambda a: (a["state"] != "firing", a["since"] or ""), reverse=False)
        return jsonify({"alerts": items})

    @app.get("/api/v1/silences")
    def silences() -> Response:
        return jsonify({"silences": [s.as_dict() for s in engine.silences.all()]})

    @app.post("/api/v1/silences")
    def create_silence() -> tuple[Response, int]:
        who = require_user()
        body = _json_body()
        service = _text(body, "service")
        rule = _text(body, "rule")
        if not service and not rule:
            raise ApiError(400, "give service and/or rule to match")
        now = engine.clock.now()
        start = _time(body, "starts_at") or now
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
            service=service,
            rule=rule,
            start=start,
            end=end,
            author=_text(body, "author") or who,
            comment=_text(body, "comment"),
        )
        return jsonify(silence.as_dict()), 201

    @app.delete("/api/v1/silences/<silence_id>")
    def delete_silence(silence_id: str) -> Response:
        require_user()
        silence = engine.expire_silence(silence_id)
        if silence is None:
            raise ApiError(404, f"no active API silence {silence_id!r}")
        return jsonify(silence.as_dict())

    return app


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "send Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "expected a JSON object")
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ApiError(400, f"{key}: expected a string of at most {MAX_TEXT} characters")
    return value.strip()


def _time(body: dict[str, Any], key: str) -> datetime | None:
    raw = body.get(key)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{key}: expected an RFC 3339 time, got {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
