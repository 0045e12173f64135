"""Who may change things: ``dashboard.auth`` as none, basic or bearer.

Reads are open (the dashboard binds to loopback unless auth is configured);
mutating requests need a principal. Basic passwords are stored as werkzeug
hashes (``python -c "from werkzeug.security import generate_password_hash as
g; print(g('pw'))"``); bearer tokens are compared in constant time.

CSRF: mutating API calls must send ``Content-Type: application/json`` (POST) or
use DELETE; a cross-site form can send neither without a CORS preflight, which
we never answer, so a browser holding basic credentials cannot be tricked.
"""

from __future__ import annotations

import hmac

from flask import Request
from werkzeug.security import check_password_hash

from server.config.models import DashboardAuthConfig


def principal(request: Request, auth: DashboardAuthConfig) -> str | None:
    """The authenticated user or token name, or None."""
    if auth.type == "bearer":
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        for name, secret in auth.tokens.items():
            if secret and hmac.compare_digest(secret.reveal().encode(), token.strip().encode()):
                return name
        return None
    if auth.type == "basic":
        creds = request.authorization
        if creds is None or creds.type != "basic" or not creds.username:
            return None
        stored = auth.users.get(creds.username)
        if stored and check_password_hash(stored.reveal(), creds.password or ""):
            return creds.username
        return None
    return None


def challenge(auth: DashboardAuthConfig) -> dict[str, str]:
    if auth.type == "basic":
        return {"WWW-Authenticate": 'Basic realm="lightbulb", charset="UTF-8"'}
    if auth.type == "bearer":
        return {"WWW-Authenticate": 'Bearer realm="lightbulb"'}
    return {}
