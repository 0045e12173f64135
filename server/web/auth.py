"""Who may change things: ``dashboard.auth`` as none, basic or bearer.

Reads are open (the dashboard binds to loopback unless auth is configured);
changes need a principal:

- API: ``Authorization: Bearer <token>`` (``bearer``) or ``Basic`` (``basic``).
  POSTs must be ``application/json``, which a cross-site form cannot send
  without a CORS preflight we never answer: the API's CSRF guard.
- Pages: ``basic`` users sign in at ``/login`` (a signed, HttpOnly, SameSite
  session cookie); every form carries a CSRF token bound to the session.

Basic passwords are stored as werkzeug hashes (``python -c "from
werkzeug.security import generate_password_hash as g; print(g('pw'))"``);
tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import current_app, g, request, session
from werkzeug.security import check_password_hash

from server.config.models import DashboardAuthConfig
from server.web.errors import ApiError
from server.web.ratelimit import LoginLimiter


def check_password(auth: DashboardAuthConfig, user: str, password: str) -> bool:
    stored = auth.users.get(user)
    return bool(stored) and check_password_hash(stored.reveal(), password)  # type: ignore[union-attr]


def principal(auth: DashboardAuthConfig) -> str | None:
    """The authenticated user or token name of this request, or None.

    Credentials sent with the request (Basic or bearer) are checked once per request
    and count toward the sign-in limits (:mod:`server.web.ratelimit`): past them,
    :class:`ApiError` 429 with ``Retry-After``, even for the right credentials.
    """
    if "lightbulb_principal" not in g:
        g.lightbulb_principal = None  # what the error page of a refused check sees
        g.lightbulb_principal = _principal(auth)
    who: str | None = g.lightbulb_principal
    return who


def _principal(auth: DashboardAuthConfig) -> str | None:
    if auth.type == "bearer":
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return _limited(None, lambda: _token_name(auth, token.strip()))
    if auth.type == "basic":
        creds = request.authorization
        if creds is not None and creds.type == "basic" and creds.username:
            name, password = creds.username, creds.password or ""
            return _limited(name, lambda: name if check_password(auth, name, password) else None)
        user = session.get("user")
        return user if isinstance(user, str) and user in auth.users else None
    return None


def _token_name(auth: DashboardAuthConfig, token: str) -> str | None:
    for name, secret in auth.tokens.items():
        if secret and hmac.compare_digest(secret.reveal().encode(), token.encode()):
            return name
    return None


def _limited(user: str | None, verify: Callable[[], str | None]) -> str | None:
    """``verify()`` unless this address (or ``user``) is past the sign-in limits: then
    :class:`ApiError` 429 with ``Retry-After``, before any check. A failed ``verify``
    counts toward the limits; a passed one clears them."""
    limiter: LoginLimiter = current_app.extensions["login_limiter"]
    address = request.remote_addr or ""
    wait = limiter.retry_after(address, user)
    if wait:
        message = f"too many failed sign-ins; try again in {wait} seconds"
        raise ApiError(429, message, {"Retry-After": str(wait)})
    who = verify()
    if who is None:
        limiter.failed(address, user)
    else:
        limiter.succeeded(address, user)
    return who


def challenge(auth: DashboardAuthConfig) -> dict[str, str]:
    if auth.type == "basic":
        return {"WWW-Authenticate": 'Basic realm="lightbulb", charset="UTF-8"'}
    if auth.type == "bearer":
        return {"WWW-Authenticate": 'Bearer realm="lightbulb"'}
    return {}


def require_user(auth: DashboardAuthConfig) -> str:
    if auth.type == "none":
        raise ApiError(403, "changes need dashboard.auth (basic or bearer) configured in the YAML")
    who = principal(auth)
    if who is None:
        raise ApiError(401, "authentication required", challenge(auth))
    return who


# Browsers drop tabs and newlines from URLs and read "\" as "/", so "/\t/evil.example"
# and "/\\evil.example" both become "//evil.example": another site.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next(target: str) -> str | None:
    """``target`` if it is a path on this site (``/alerts?x=1``), else None.

    Refuses anything a browser could read as another origin: a scheme or host,
    ``//``, and any control character, space or backslash (the open redirect of
    ``/login?next=/%09/evil.example/``).
    """
    if not target.startswith("/") or target.startswith("//") or _UNSAFE.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    sent = request.form.get("csrf", "").encode("utf-8", "surrogatepass")
    expected = session.get("csrf")
    # bytes: compare_digest raises TypeError on str with non-ASCII (a 500 for any form)
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected.encode()):
        raise ApiError(403, "the form expired or did not come from this dashboard; reload it")
