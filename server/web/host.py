"""The daemon's dashboard: one listening socket and the config it serves, changed together.

A reload that moves ``dashboard.bind`` or ``dashboard.port`` gets a new socket
serving a new app built from the new config (auth included), and the old socket
is closed; if the new address cannot be bound, the old socket and config stay
and the caller refuses the whole reload. So a reload can never leave the old
``0.0.0.0`` socket open while dropping its auth.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.config.models import Config, DashboardConfig
from server.web.admission import Door, DoorStats
from server.web.context import WebContext

if TYPE_CHECKING:
    from server.web.serve import WebServer

log = logging.getLogger("lightbulb.web")


class BindError(Exception):
    """The dashboard's address cannot be listened on; the message names the key to change."""


def bind_error(dashboard: DashboardConfig, exc: OSError) -> BindError:
    """``exc`` from binding ``dashboard.bind:dashboard.port``, worded as the fix."""
    where = f"{dashboard.bind}:{dashboard.port}"
    if exc.errno == errno.EADDRINUSE:
        return BindError(
            f"dashboard.port: {where} is already in use (another program listens on port "
            f"{dashboard.port}); set dashboard.port to a free port, or dashboard.enabled: false"
        )
    if exc.errno == errno.EACCES:
        return BindError(
            f"dashboard.port: not allowed to listen on {where} (ports below 1024 need "
            "privileges); set dashboard.port to 1024 or above"
        )
    reason = exc.strerror or str(exc)
    return BindError(
        f"dashboard.bind: cannot listen on {where} ({reason}); set dashboard.bind to an "
        "address of this machine, such as 127.0.0.1"
    )


def _endpoint(dashboard: DashboardConfig) -> tuple[bool, str, int]:
    return dashboard.enabled, dashboard.bind, dashboard.port


class DashboardHost:
    """Owns the dashboard's server and context; ``make_context`` builds one for a config.

    ``door``: the admission counts of every server it runs (:mod:`server.web.admission`).
    """

    def __init__(self, make_context: Callable[[Config], WebContext]) -> None:
        self._make_context = make_context
        self.door = DoorStats()
        self.server: WebServer | None = None
        self.context: WebContext | None = None
        self._config: Config | None = None

    def open(self, config: Config) -> None:
        """Bind the socket (connections queue until :meth:`start`); raises :class:`BindError`."""
        self._config = config
        if not config.dashboard.enabled:
            return
        context = self._make_context(config)
        self.server = self._bind(context, config.dashboard)
        self.context = context

    def start(self) -> None:
        if self.server is not None:
            self.server.start()

    def apply(self, config: Config) -> str | None:
        """Serve ``config`` from now on; returns why not (everything old kept) or None."""
        old = self._config
        if old is None or _endpoint(old.dashboard) == _endpoint(config.dashboard):
            if self.context is not None:
                self.context.reconfigure(config)  # auth and the rest switch as one object
            if self.server is not None:
                self.server.configure(config.logs)
            self._config = config
            return None
        if not config.dashboard.enabled:
            self.stop()
            self._config, self.server, self.context = config, None, None
            return None
        context = self._make_context(config)
        try:
            server = self._bind_replacing(context, config.dashboard)
        except BindError as exc:
            return str(exc)
        self.stop()
        self.server, self.context, self._config = server, context, config
        server.start()
        return None

    def close_door(self) -> None:
        """No new connections or requests from now on (503 to those not being served)."""
        if self.server is not None:
            self.server.close_door()

    def held(self) -> int:
        """Requests the server holds now (received, waiting, or being served)."""
        return self.server.door.held() if self.server is not None else 0

    def wait_answered(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the requests held to be answered; True if they were."""
        return self.server.wait_answered(seconds) if self.server is not None else True

    def stop(self, grace: float = 0.0) -> None:
        """Stop serving; requests held get up to ``grace`` s to be answered."""
        if self.server is not None:
            self.server.stop(grace)

    def _bind(self, context: WebContext, dashboard: DashboardConfig) -> WebServer:
        # Flask and the server load with the first dashboard served, not with the daemon
        from server.web.app import create_app
        from server.web.serve import WebServer

        try:
            logs = context.config.logs
            door = Door(logs, self.door)
            return WebServer(create_app(context), dashboard.bind, dashboard.port, door=door)
        except OSError as exc:
            raise bind_error(dashboard, exc) from None

    def _bind_replacing(self, context: WebContext, dashboard: DashboardConfig) -> WebServer:
        """Bind the new address; if only our own socket is in the way, close it first.

        (``0.0.0.0:8080`` to ``127.0.0.1:8080`` cannot be bound while the first listens.)
        If the new address still fails, the old socket is opened again as it was.
        """
        try:
            return self._bind(context, dashboard)
        except BindError:
            if self.server is None or self.context is None or self._config is None:
                raise
        self.server.stop()
        try:
            return self._bind(context, dashboard)
        except BindError:
            old = self._config.dashboard
            try:
                self.server = self._bind(self.context, old)
                self.server.start()
            except BindError as exc:  # someone took it in between: say so, keep going
                log.error("dashboard not served any more: %s", exc)
                self.server = None
            raise
