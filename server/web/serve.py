"""Serve the Flask app from a daemon thread with waitress (production WSGI)."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from waitress.server import create_server

log = logging.getLogger("lightbulb.web")


class WebServer:
    def __init__(self, app: Any, host: str, port: int, threads: int = 4) -> None:
        self._server = create_server(app, host=host, port=port, threads=threads, ident="lightbulb")
        self.port = int(self._server.effective_port)
        self.host = host
        self._thread = threading.Thread(target=self._run, name="lightbulb-web", daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # closed during shutdown
            self._server.run()

    def start(self) -> None:
        self._thread.start()
        log.info("dashboard and API on http://%s:%d/", self.host, self.port)

    def serve_forever(self) -> None:
        """In the foreground (``lightbulb dashboard``)."""
        log.info("dashboard and API on http://%s:%d/", self.host, self.port)
        self._server.run()

    def stop(self) -> None:
        self._server.close()
