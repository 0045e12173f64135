"""Flask app factory: pages, JSON API, /metrics, health; security headers; errors.

Errors are JSON under ``/api/`` and a page elsewhere; nothing answers with a
traceback or a bare 500 for bad input (storage errors are a 503).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from server.core.humanize import duration, number
from server.core.redact import finalize, redact_value
from server.core.repeats import Repeats
from server.core.text import displayable
from server.resources import templates_dir
from server.storage import StorageError
from server.web.alerts_view import delivery_text
from server.web.api import api
from server.web.api_history import history
from server.web.auth import challenge, csrf_token, principal
from server.web.charts import badge, pct, utc
from server.web.context import WebContext
from server.web.errors import ApiError
from server.web.feed import feed
from server.web.incidents_view import incidents
from server.web.ingest import ingest
from server.web.metrics import CONTENT_TYPE, exposition
from server.web.pages import pages, signed_in
from server.web.ratelimit import LoginLimiter
from server.writer import Busy

# open even when dashboard.auth.public_reads is false
OPEN_ENDPOINTS = frozenset(
    {"pages.status_page", "pages.login", "healthz", "readyz", "static", "ingest.ndjson",
     "ingest.otlp", "history.badge", "feed.atom"}
)  # fmt: skip
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class RedactingJSON(DefaultJSONProvider):
    """Every JSON answer leaves with secrets masked (server.core.redact)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return super().dumps(redact_value(obj), **kwargs)


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}`` of a page: secrets masked (:func:`finalize`), and in
    text (not markup we built) NUL, ``\x01``, ESC and the like as U+FFFD, as the feed
    writes them (an operator's note may hold any character the API accepted)."""
    value = finalize(value)
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return displayable(value)
    return value


def create_app(ctx: WebContext) -> Flask:
    templates = templates_dir()
    app = Flask(
        "lightbulb",
        template_folder=str(templates),
        static_folder=str(templates / "static"),
        static_url_path="/static",
    )
    app.extensions["lightbulb"] = ctx
    app.extensions["login_limiter"] = LoginLimiter(ctx.clock)
    app.config.update(
        MAX_CONTENT_LENGTH=64 * 1024,
        # Sessions only carry who signed in and the CSRF token; a restart signs everyone out
        # unless LIGHTBULB_SECRET_KEY is set.
        SECRET_KEY=os.environ.get("LIGHTBULB_SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.jinja_env.autoescape = True
    app.jinja_env.finalize = _finalize  # secrets masked, unshowable characters replaced
    app.json = RedactingJSON(app)
    app.jinja_env.filters["t"] = utc
    app.jinja_env.filters["pct"] = pct
    app.jinja_env.filters["delivery"] = delivery_text  # alert notifications per channel
    app.jinja_env.filters["num"] = number
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.globals.update(
        badge=badge,
        csrf_token=csrf_token,
        signed_in=signed_in,
    )

    @app.context_processor
    def _auth_type() -> dict[str, str]:
        return {"auth_type": ctx.config.dashboard.auth.type}  # follows a reload

    app.register_blueprint(api)
    app.register_blueprint(history)
    app.register_blueprint(incidents)
    app.register_blueprint(feed)
    app.register_blueprint(ingest)
    app.register_blueprint(pages)
    _routes(app, ctx)
    _errors(app)

    @app.before_request
    def _reads() -> Any:
        """With public_reads off, only the status page and health checks are open."""
        auth = ctx.config.dashboard.auth
        if auth.public_reads or auth.type == "none" or request.endpoint in OPEN_ENDPOINTS:
            return None
        if principal(auth) is not None:
            return None
        if auth.type == "basic" and not request.path.startswith(("/api/", "/metrics")):
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        raise ApiError(401, "authentication required", challenge(auth))

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.path != "/static" and not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def _routes(app: Flask, ctx: WebContext) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        if ctx.daemon is not None:
            health = ctx.daemon.health()
            checks = {
                # an insert hung in the engine: nothing more is stored until a restart
                "storage": bool(health["storage_writable"]) and not health.get("insert_hung"),
                "scheduler": bool(health["scheduler_running"]),
                "spool": not health.get("spool_error"),
            }
        else:
            try:
                ctx.storage.query("SELECT 1 AS one")
                checks = {"storage": True}
            except StorageError:
                checks = {"storage": False}
        ready = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", **checks}
        if not ready:  # which part: a full spool is not ClickHouse being down
            body["failing"] = [name for name, ok in checks.items() if not ok]
        if not checks.get("spool", True):
            body["spool_error"] = health["spool_error"]
        return jsonify(body), 200 if ready else 503

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(exposition(ctx), content_type=CONTENT_TYPE)


def _errors(app: Flask) -> None:
    def wants_json() -> bool:
        return request.path.startswith(("/api/", "/v1/")) or request.path in ("/metrics", "/readyz")

    def render(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        if wants_json():
            return jsonify({"error": message}), status, headers or {}
        page = render_template("error.html", status=status, message=message)
        return page, status, headers or {}

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return render(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return render(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Busy)
    def _busy(exc: Busy) -> Any:
        # an action (silence, ack) whose rows the writer cannot take now: not stored,
        # and the client is told to come back, as pushes are
        sink = app.extensions["lightbulb"].sink
        if sink is not None:
            sink.stats.busy_refusals += 1
        return render(exc.status, str(exc), {"Retry-After": str(exc.retry_after)})

    # an outage fails every request: one line a minute, not one each
    failing = Repeats(clock=app.extensions["lightbulb"].clock)

    @app.errorhandler(StorageError)
    def _storage(exc: StorageError) -> Any:
        unlogged = failing.due()
        if unlogged is not None:
            more = f" ({unlogged} more failed since the last such line)" if unlogged else ""
            app.logger.warning("dashboard query failed: %s%s", exc, more)
        return render(503, "ClickHouse is not answering right now; try again shortly")
