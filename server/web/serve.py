"""Serve the Flask app from a daemon thread with waitress (production WSGI)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

from waitress.server import create_server

log = logging.getLogger("lightbulb.web")


class WebServer:
    def __init__(self, app: Any, host: str, port: int, threads: int = 4) -> None:
        # poll(), not waitress' default select(): select() raises ValueError for a socket
        # numbered 1024 or more, which ends the serving thread and leaves the port taking
        # connections that are never answered. chDB takes a process there: each of its idle
        # pool threads keeps three /proc files open (1,779 in the test process after ~750 tests).
        self._server = create_server(
            app, host=host, port=port, threads=threads, ident="lightbulb", asyncore_use_poll=True
        )
        self.port = int(self._server.effective_port)
        self.host = host
        self._thread = threading.Thread(target=self._run, name="lightbulb-web", daemon=True)
        self._stopped = False

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
        """Close the listening socket and every open connection, and end the worker threads.

        Kept-alive connections would otherwise go on being served by this app (and its
        config) after a reload moved the dashboard to a new socket.
        """
        if self._stopped:
            return
        self._stopped = True
        listener = self._server.socket
        self._server.del_channel()  # out of the poll map first: no accept on the way out
        with contextlib.suppress(OSError):
            # wakes the poll that holds the socket: until then the port stays taken
            listener.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for channel in list(self._server._map.values()):
            with contextlib.suppress(OSError):
                channel.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown(timeout=1)
