"""The daemon's HTTP side: dashboard pages, JSON API, /metrics, health.

Flask, Werkzeug, waitress and prometheus_client (~20 MB of RSS) load on first use
of :func:`create_app` or :class:`WebServer`, so a daemon with the dashboard off
never loads them; :mod:`server.web.context` needs none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.web.context import WebContext

if TYPE_CHECKING:
    from server.web.app import create_app
    from server.web.serve import WebServer

__all__ = ["WebContext", "WebServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.web.app import create_app

        return create_app
    if name == "WebServer":
        from server.web.serve import WebServer

        return WebServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
