"""Serve the Flask app from a daemon thread with waitress (production WSGI).

Requests are admitted at the door (:mod:`server.web.admission`): past
``logs.max_in_flight`` held requests a push is answered 429 at once, and while
the server stops every request not yet being served is answered 503.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from server.config.models import LogsConfig
from server.core.descriptors import connections_within
from server.web import waitress_room as room
from server.web.admission import Door
from server.web.waitress_door import Channel, Dispatcher, maintain

log = logging.getLogger("lightbulb.web")
# waitress warns "Task queue depth is N" for every request queued behind its threads: under
# overload a line per request. The door bounds that queue, lightbulb_requests_held shows it.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)
# Connections served at once. Beyond waitress's 100, clients waited unseen in the listen
# backlog, unanswered (a client's timeout, then its retry of a request later stored: a
# duplicate); a connection costs a socket and a few KB, the door bounds what they send.
CONNECTION_LIMIT = 500
RECV_BYTES = 256 * 1024  # per read: a refused 4 MB body is thrown away in 16 reads, not 512
POLL = 0.02  # s between looks at the connections while answers drain
# s a connection may stay idle (kept alive, or opened and silent) before it is closed. An
# idle connection holds one of CONNECTION_LIMIT's slots, so shorter than nginx's defaults
# (keepalive_timeout 75 s, client_header_timeout 60 s); long enough that a client pushing
# every few seconds (an OpenTelemetry SDK's batch processor exports every 1 s by default)
# reuses its connection. Not a setting: a reverse proxy in front keeps its own idle timeout
# below it (the README says how), and at the limit idle ones are closed to make room anyway.
IDLE_TIMEOUT = 20
CLEANUP_INTERVAL = 1  # s between looks for idle connections and late bodies


class WebServer:
    """waitress on ``host:port`` with ``threads`` threads behind ``door`` (default: the
    ``logs.max_in_flight*`` settings' defaults)."""

    def __init__(self, app: Any, host: str, port: int, threads: int = 4,
                 door: Door | None = None) -> None:  # fmt: skip
        if door is None:  # the settings' defaults
            door = Door(LogsConfig())
        self.door = door
        self.dispatcher = Dispatcher(self.door)
        self.dispatcher.set_thread_count(threads)
        try:
            self._server = create_server(
                app, host=host, port=port, threads=threads, ident="lightbulb",
                _dispatcher=self.dispatcher, connection_limit=connections_within(
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0], CONNECTION_LIMIT),
                # poll(), not waitress's default select(): select() raises ValueError for a
                # socket numbered 1024 or more, which ends the serving thread and leaves the
                # port taking connections never answered. chDB takes a process there: each
                # of its idle pool threads keeps three /proc files open.
                asyncore_use_poll=True, recv_bytes=RECV_BYTES,
                channel_timeout=IDLE_TIMEOUT, cleanup_interval=CLEANUP_INTERVAL,
                # a chunked body is cut (413, closed) as it passes the door's max_body
                max_request_body_size=door.max_body + 1,
                backlog=room.listen_backlog(),  # waitress's 1,024: a burst's SYNs dropped
                # a client's reset or a flood's vanished socket is the client's doing, not a
                # fault of ours: waitress logs each with a traceback (267 in 35 s under a
                # trickling flood), which would grow the log as long as an attack lasts
                log_socket_errors=False,
            )  # fmt: skip
        except BaseException:
            self.dispatcher.shutdown(timeout=1)
            raise
        self._server.channel_class = Channel
        self._server.room = room.Room()
        self._server.door = self.door
        self._server.maintenance = lambda now: maintain(self._server, now)
        self._server.readable = lambda: room.readable(self._server)
        self._server.handle_accept = lambda: room.handle_accept(self._server)
        self.port = int(self._server.effective_port)
        self.host = host
        self._thread = threading.Thread(target=self._run, name="lightbulb-web", daemon=True)
        self._stopped = False
        self._closed = False

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception as exc:  # any end of the loop but a stop
            if self._closed:
                return  # the listener closed under the loop on the way out
            # A dead loop behind an open port takes connections it never answers; refused
            # connections at least tell clients, and the log says why.
            log.error("dashboard server on %s:%d stopped serving (%s: %s); its port is closed",
                      self.host, self.port, type(exc).__name__, exc)  # fmt: skip
            self.close_door()

    def configure(self, logs: LogsConfig) -> None:
        """Take ``logs``'s bounds from the next request on (a reload)."""
        self.door.configure(logs)
        self._server.adj.max_request_body_size = self.door.max_body + 1

    def start(self) -> None:
        self._thread.start()
        log.info("dashboard and API on http://%s:%d/", self.host, self.port)

    def serve_forever(self) -> None:
        """In the foreground (``lightbulb dashboard``)."""
        log.info("dashboard and API on http://%s:%d/", self.host, self.port)
        self._server.run()

    def close_door(self) -> None:
        """Stop taking connections and requests: requests not yet being served are
        answered 503 with ``Retry-After``; those being served go on to their answer."""
        if self._closed:
            return
        self._closed = True
        self.door.closing = True
        listener = self._server.socket
        self._server.del_channel()  # out of the poll map first: no accept on the way out
        with contextlib.suppress(OSError):
            # wakes the poll that holds the socket: until then the port stays taken
            listener.shutdown(socket.SHUT_RDWR)
        # the listening socket only: the trigger stays, threads still answering wake the loop
        wasyncore.dispatcher.close(self._server)
        self.dispatcher.refuse_queued()
        self._server.pull_trigger()

    def answered(self) -> bool:
        """True when no request is held and every answer has left its buffer."""
        channels = list(self._server.active_channels.values())
        return self.door.held() == 0 and not any(c.requests or c.total_outbufs_len
                                                 for c in channels)  # fmt: skip

    def wait_answered(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every held request to be answered; True if they were."""
        deadline = time.monotonic() + seconds
        while self._thread.is_alive() and not self.answered():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        return True

    def stop(self, grace: float = 0.0) -> None:
        """Close the door, wait up to ``grace`` s for the requests held to be answered,
        then close every connection and end the threads.

        Kept-alive connections would otherwise go on being served by this app (and its
        config) after a reload moved the dashboard to a new socket.
        """
        if self._stopped:
            return
        self.close_door()
        self.wait_answered(grace)
        self._stopped = True
        for channel in list(self._server._map.values()):  # the trigger too: the loop ends
            with contextlib.suppress(OSError):
                channel.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.dispatcher.shutdown(timeout=1)
