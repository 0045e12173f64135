"""Admission at the web server's door: every request the server holds is counted, and a
push beyond ``logs.max_in_flight`` is answered 429 at once, before its body is kept.

Overload used to queue inside waitress, out of the app's sight: bodies buffered
for every connection, tasks waiting for one of its four threads; the ingest
pool's ``logs.worker_queue`` never saw more than a handful, so nothing was ever
refused, latency grew to tens of seconds (clients gave up on requests that were
then stored: their retry a duplicate) and memory with it.

Here the count is taken where a request first becomes known, when its headers
have arrived (in waitress's I/O thread): a request is *held* from then until its
answer is written, whether its body is still arriving, it waits for a thread,
for a worker, or is being prepared and stored. A push (``POST`` to
:data:`PUSH_PATHS`) that finds ``limit`` held is refused: its body is read and
thrown away as it arrives (memory stays flat, and the client, still sending,
reads the answer instead of a reset connection), and a small thread of its own
answers ``429`` with ``Retry-After`` without waiting behind the held ones.
Nothing of a refused request reaches the app, so nothing of it is stored.
Other requests (the dashboard, ``/metrics``) are counted but never refused.

While the server stops (:meth:`Door.close`) every request not yet being served,
and any that arrives on an open connection, is answered ``503`` with
``Retry-After`` and the connection closed: stopping never drops an answer.

The bounds and counts live here, free of waitress (the daemon imports them with the
dashboard off); the waitress classes that apply them are in :mod:`server.web.waitress_door`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.web.waitress_door import Parser

PUSH_PATHS = frozenset({"/api/v1/logs", "/v1/logs"})
RETRY_AFTER = 1  # s: the OTLP spec's exporters wait at least this long before retrying
REASONS = {429: "Too Many Requests", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Refusal:
    """The answer a refused request gets: ``status`` (429/503), ``message``, and whether
    the connection closes after it."""

    status: int
    message: str
    close: bool = False


@dataclass
class DoorStats:
    """Counts since start: pushes refused for the bound (429), pushes answered 503
    while stopping, and the most requests held at once (``peak``)."""

    refused: int = 0
    stopping: int = 0
    peak: int = 0


class Door:
    """One server's bounds and counts (``stats``: shared by the servers a reload replaces
    one with another).

    ``limit``: requests held; ``limit_bytes``: the bodies they carry (``Content-Length``),
    bytes. Both are changed by a reload. A push alone is always admitted, however large
    (``logs.max_body`` is its own bound).
    """

    def __init__(self, limit: int, limit_bytes: int, stats: DoorStats | None = None) -> None:
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.stats = stats or DoorStats()
        self.closing = False
        self._channels: dict[int, Any] = {}  # the server's map of open connections

    def watch(self, channels: dict[int, Any]) -> None:
        """Count the requests of ``channels`` (waitress's ``active_channels``)."""
        self._channels = channels

    def held(self) -> int:
        """Requests the server holds now: headers in, answer not yet written, not refused."""
        return self._held()[0]

    def _held(self) -> tuple[int, int]:
        """(requests held, bytes of their bodies)."""
        count = size = 0
        for channel in list(self._channels.values()):
            held = [r for r in list(channel.requests) if _admitted(r)]
            pending = channel.request
            if pending is not None and pending.headers_finished and _admitted(pending):
                held.append(pending)
            count += len(held)
            size += sum(r.content_length for r in held)
        return count, size

    def judge(self, request: Parser) -> Refusal | None:
        """Whether ``request`` (headers just read) is refused; None: admitted."""
        if self.closing:
            return Refusal(503, "the daemon is stopping; retry", close=True)
        held, size = self._held()
        self.stats.peak = max(self.stats.peak, held + 1)
        if request.command != "POST" or request.path not in PUSH_PATHS:
            return None
        if held >= self.limit:
            why = f"{held} requests are held (logs.max_in_flight is {self.limit})"
        elif size and size + request.content_length > self.limit_bytes:
            why = (f"{held} requests carrying {size:,} bytes are held (logs.max_in_flight_bytes "
                   f"is {self.limit_bytes:,})")  # fmt: skip
        else:
            return None
        return Refusal(429, f"busy: {why}, being received, waiting or being stored; nothing "
                            "of this request was kept; retry")  # fmt: skip

    def answered(self, refusal: Refusal, request: Parser) -> None:
        """Count ``refusal`` of a push, written to its client (one thread answers them
        all); other requests turned away while stopping are not pushes refused."""
        if request.command != "POST" or request.path not in PUSH_PATHS:
            return
        if refusal.status == 503:
            self.stats.stopping += 1
        else:
            self.stats.refused += 1


def _admitted(request: Any) -> bool:
    return getattr(request, "refusal", None) is None
