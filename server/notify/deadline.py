"""A hard wall-clock limit on one send attempt, whatever the receiver does.

Socket timeouts bound each *read*; a receiver that sends its headers and then a
byte a second (or accepts and says nothing useful, slowly) keeps every read
within its timeout and the attempt alive forever. :class:`AttemptLimit` bounds
the whole attempt instead: the channel's ``timeout`` (to connect) plus its
``response_timeout`` (to be answered), counted from the attempt's start. When
it passes, every socket the attempt opened is shut down, so the blocked read
returns at once with an error and the channel reports a timeout.

Sockets are registered through :func:`watch`, called where each client opens
them (the HTTP adapter of :mod:`server.notify.http`, the SMTP client of
:mod:`server.notify.email`); the limit in force is per thread, since every
channel attempts from its own thread. Clients whose sockets we cannot reach
(Apprise's plugins) are bounded by :class:`Bounded` instead.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

_current = threading.local()
T = TypeVar("T")


class AttemptLimit:
    """Context manager: shut down the attempt's sockets ``seconds`` after entering.

    ``expired`` tells afterwards whether the limit cut the attempt short, so the
    caller can report a timeout rather than the socket error it caused.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> AttemptLimit:
        self._outer = getattr(_current, "limit", None)
        _current.limit = self
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        _current.limit = self._outer

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:  # opened after the limit passed: no use going on
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv/send in the other thread


def watch(sock: socket.socket) -> socket.socket:
    """Put ``sock`` under the limit of the attempt running in this thread, if any."""
    limit: AttemptLimit | None = getattr(_current, "limit", None)
    if limit is not None:
        limit.watch(sock)
    return sock


class Bounded:
    """Runs a blocking call in a helper thread and waits at most ``seconds`` for it.

    For clients whose sockets we cannot reach. A call still running at the limit
    is left to finish on its own; until it has, :meth:`run` refuses to start
    another (one attempt in flight per channel, as everywhere).
    """

    def __init__(self) -> None:
        self._running: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and self._running.is_alive()

    def run(self, call: Callable[[], T], seconds: float) -> tuple[bool, T | None]:
        """(finished, result): ``finished`` is False when ``seconds`` passed first.

        Raises what ``call`` raised; RuntimeError while an earlier call still runs.
        """
        if self.busy:
            raise RuntimeError("the previous attempt is still running")
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["result"] = call()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=target, name="lightbulb-notify-bounded", daemon=True)
        self._running = thread
        thread.start()
        thread.join(seconds)
        if thread.is_alive():
            return False, None
        self._running = None
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return True, box.get("result")  # type: ignore[return-value]
