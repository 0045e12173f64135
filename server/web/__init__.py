"""The daemon's HTTP side: dashboard pages, JSON API, /metrics, health."""

from __future__ import annotations

from server.web.app import create_app
from server.web.context import WebContext
from server.web.serve import WebServer

__all__ = ["WebContext", "WebServer", "create_app"]
