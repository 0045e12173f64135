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

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.config.models import LogsConfig
    from server.web.waitress_door import Parser

PUSH_PATHS = frozenset({"/api/v1/logs", "/v1/logs"})
# a gzip body is charged this many times its length (at most logs.max_body): log lines
# compress about 5-10x, and inflating is bounded by max_body anyway
GZIP_RATIO = 8
RETRY_AFTER = 1  # s: the OTLP spec's exporters wait at least this long before retrying
REASONS = {
    401: "Unauthorized",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
BODY_TIMEOUT = 10.0  # s: a request arrives whole within this (logs.body_timeout)


@dataclass(frozen=True)
class Refusal:
    """The answer a refused request gets: ``status`` (401/408/413/429/503), ``message``, and whether
    the connection closes after it."""

    status: int
    message: str
    close: bool = False


STOPPING = Refusal(503, "the daemon is stopping; retry", close=True)  # frozen: one shared


@dataclass
class DoorStats:
    """Counts since start: pushes refused for the bound (429), pushes answered 503
    while stopping, and pushes rejected at the door (``rejected``: no valid token 401,
    ``Content-Length`` past ``logs.max_body`` 413, body not arrived within
    ``logs.body_timeout`` 408)."""

    refused: int = 0
    stopping: int = 0
    rejected: int = 0  # pushes answered 401/413 from their headers, or 408 (body too slow)


class Door:
    """One server's bounds and counts (``stats``: shared by the servers a reload replaces
    one with another).

    ``limit``: requests held; ``limit_bytes``: the bodies they carry, bytes. A push alone
    is always admitted, however large, up to ``max_body`` bytes (larger: 413 from its
    headers, its body never read). ``tokens``: the push tokens (bytes); when any is set, a
    push without one is answered 401 from its headers, never held nor charged.
    ``body_timeout``: s from a request's first byte to its last (else 408, closed). All
    are changed by a reload (:meth:`configure`).

    A request is charged what it can legally carry: a push its ``Content-Length``, or,
    chunked, the bytes received so far; a gzip body the most it may inflate to (its
    length times :data:`GZIP_RATIO`, at most ``max_body``). Requests to other paths are
    charged no bytes, and count against ``limit`` only once their body is in.
    """

    def __init__(self, limit: int, limit_bytes: int, stats: DoorStats | None = None, *,
                 max_body: int = 5 * 2**20, tokens: tuple[bytes, ...] = (),
                 body_timeout: float = BODY_TIMEOUT) -> None:  # fmt: skip
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.max_body = max_body
        self.tokens = tokens
        self.body_timeout = body_timeout
        self.stats = stats or DoorStats()
        self.closing = False
        self._channels: dict[int, Any] = {}  # the server's map of open connections

    @classmethod
    def from_config(cls, logs: LogsConfig, stats: DoorStats | None = None) -> Door:
        """A door with ``logs``'s bounds (``logs.max_in_flight*``, ``max_body``, tokens,
        ``body_timeout``)."""
        door = cls(logs.max_in_flight, logs.max_in_flight_bytes, stats)
        door.configure(logs)
        return door

    def configure(self, logs: LogsConfig) -> None:
        """Take ``logs``'s bounds from now on (a reload)."""
        self.limit = logs.max_in_flight
        self.limit_bytes = int(logs.max_in_flight_bytes)
        self.max_body = int(logs.max_body)
        self.body_timeout = float(logs.body_timeout)
        self.tokens = tuple(t.reveal().encode() for t in logs.tokens.values() if t)

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
            if (pending is not None and pending.headers_finished and _admitted(pending)
                    and _push(pending)):  # fmt: skip
                held.append(pending)
            count += len(held)
            size += sum(self.charge(r) for r in held)
        return count, size

    def charge(self, request: Parser) -> int:
        """Bytes ``request`` is charged (see the class): 0 for other paths than pushes."""
        if not _push(request):
            return 0
        if request.chunked:
            body = request.body_rcv
            got = len(body.buf) if body is not None else 0
        else:
            got = request.content_length
        if request.headers.get("CONTENT_ENCODING", "").strip().lower() in ("gzip", "x-gzip"):
            got *= GZIP_RATIO
        return int(min(got, self.max_body))

    def judge(self, request: Parser) -> Refusal | None:
        """Whether ``request`` (headers just read) is refused; None: admitted."""
        if self.closing:
            return STOPPING
        held, size = self._held()
        if not _push(request):
            return None
        if self.tokens and not self._authorised(request):
            return Refusal(401, "a logs token is required (Authorization: Bearer <token>); "
                                "nothing of this request was read", close=True)  # fmt: skip
        if request.content_length > self.max_body:
            return Refusal(413, f"body of {request.content_length:,} bytes is larger than "
                                f"logs.max_body ({self.max_body:,} bytes); not read",
                           close=True)  # fmt: skip
        if held >= self.limit:
            why = f"{held} requests are held (logs.max_in_flight is {self.limit})"
        elif size and size + self.charge(request) > self.limit_bytes:
            why = (f"{held} requests carrying {size:,} bytes are held (logs.max_in_flight_bytes "
                   f"is {self.limit_bytes:,})")  # fmt: skip
        else:
            return None
        return Refusal(429, f"busy: {why}, being received, waiting or being stored; nothing "
                            "of this request was kept; retry")  # fmt: skip

    def answered(self, refusal: Refusal, request: Parser) -> None:
        """Count ``refusal`` of a push, written to its client (one thread answers them
        all); other requests turned away while stopping are not pushes refused."""
        if not _push(request):
            return
        if refusal.status == 503:
            self.stats.stopping += 1
        elif refusal.status == 429:
            self.stats.refused += 1
        else:
            self.stats.rejected += 1

    def _authorised(self, request: Parser) -> bool:
        scheme, _, token = request.headers.get("AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = token.strip().encode()
        return any(hmac.compare_digest(secret, given) for secret in self.tokens)


def _push(request: Any) -> bool:
    return request.command == "POST" and request.path in PUSH_PATHS


def _admitted(request: Any) -> bool:
    return getattr(request, "refusal", None) is None
