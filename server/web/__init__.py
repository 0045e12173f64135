"""The daemon's HTTP side: Flask app factory and the WSGI server thread."""

from __future__ import annotations

from server.web.app import create_app
from server.web.serve import WebServer

__all__ = ["WebServer", "create_app"]
