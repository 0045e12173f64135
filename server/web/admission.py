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
:data:`PUSH_PATHS`) that finds ``limit`` pushes held is refused (reads are bounded apart,
below: a dashboard's tabs never crowd pushes out): its body is read and
thrown away as it arrives (memory stays flat, and the client, still sending,
reads the answer instead of a reset connection), and a small thread of its own
answers ``429`` with ``Retry-After`` without waiting behind the held ones.
Nothing of a refused request reaches the app, so nothing of it is stored.
Other requests are counted, and the dashboard's and the API's reads queued apart
(:meth:`Door.admit_read`, :mod:`server.web.read_lanes`): at most the server's threads
less one are served at once, the rest wait their turn, and pushes and probes pass them,
so one thread always stays for those (:data:`CHEAP_PATHS` and ``/static/`` are never
counted as reads). A flood of expensive pages (``/incidents``, ``/status``, the API's
history) once took every thread and every place in waitress's queue, so pushes,
``/healthz`` and ``/metrics`` waited behind them. Only past :data:`READS_PER_ADDRESS`
reads held by one client address is one answered ``503`` with ``Retry-After`` from the
refusal lane: more than a browser's six connections to a host, so tabs and a page's own
script wait, never get refused.
A push without a valid token is answered from its headers, its body never read:
``401`` with ``WWW-Authenticate`` (:mod:`server.logs.tokens`), or ``403`` when no
token is configured at all (ingestion is off).

A push's body must arrive whole within ``logs.body_timeout``; while every slot is
held, one that cannot (:meth:`Door.doomed`) gives its slot to the newcomer and is
answered ``408`` at once rather than at its deadline: bodies trickled by a client
holding a token, reopened as each is refused, could otherwise keep every slot.

The counts are kept as requests come and go (:meth:`Door.hold`, :meth:`Door.release`):
judging a request costs the same however many connections are open.

While the server stops (:meth:`Door.close`) every request not yet being served,
and any that arrives on an open connection, is answered ``503`` with
``Retry-After`` and the connection closed: stopping never drops an answer.

The bounds and counts live here, free of waitress (the daemon imports them with the
dashboard off); the waitress classes that apply them are in :mod:`server.web.waitress_door`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.logs.tokens import OFF, REQUIRED, PushTokens, challenge

if TYPE_CHECKING:
    from server.config.models import LogsConfig
    from server.web.waitress_door import Parser

PUSH_PATHS = frozenset({"/api/v1/logs", "/v1/logs"})
# A gzip body is charged this many times its length against logs.max_in_flight_bytes: an
# estimate of what it inflates to, not a bound (the bound is logs.max_body, which caps
# every charge and the inflating itself). Charging max_body for each would let one or
# two gzip pushes in at a time under the default 8 MiB; charging the wire length would
# let a few hundred KiB on the wire hold tens of MiB inflated. The benchmark's bodies
# inflate 22x (NDJSON) and 12x (OTLP protobuf; benchmarks/ingest.py's bodies, gzip -6);
# real logs, less repetitive, less: 8 under-charges only the most repetitive ones.
GZIP_RATIO = 8
# Content-Encoding values read as gzip (RFC 9110 section 8.4.1.3: recipients treat x-gzip as gzip)
GZIP = frozenset({"gzip", "x-gzip"})
# the WSGI environ's key of a callable answering whether the client has gone (closed its
# connection): a push whose client left before its records were stored is not stored
CLIENT_GONE = "lightbulb.client_gone"
# A held push whose body arrives slower than this on average (bytes/s, since its first
# byte) is doomed once the door is full: Apache's mod_reqtimeout default MinRate (500
# bytes/s, "RequestReadTimeout body=20,MinRate=500"). Judged after MEASURE_AFTER s: what
# a client sends in its first round trips says little (TCP slow start, Expect).
MIN_RATE = 500
MEASURE_AFTER = 0.25
RETRY_AFTER = 1  # s: the OTLP spec's exporters wait at least this long before retrying
# Requests that cost next to nothing and must answer whatever else is going on: probes,
# the scrape, static files. Never bounded as reads.
CHEAP_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/favicon.ico"})
CHEAP_PREFIXES = ("/static/",)
# Reads (pages and API answers, each a query or several) one client address may have held
# (served or waiting) at once: browsers open at most six connections to a host (Chromium;
# Firefox's network.http.max-persistent-connections-per-server), so one operator's tabs
# and their scripts wait their turn and are never refused; a flood from one address is.
# Behind a reverse proxy every client shares its address: 16 reads wait there at most.
READS_PER_ADDRESS = 16
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Refusal:
    """The answer a refused request gets: ``status`` (400/401/403/408/413/429/503), ``message``,
    whether the connection closes after it, and ``headers`` of its own (a 401's
    ``WWW-Authenticate``)."""

    status: int
    message: str
    close: bool = False
    headers: tuple[tuple[str, str], ...] = ()


STOPPING = Refusal(503, "the daemon is stopping; retry", close=True)  # frozen: one shared
# RFC 9112 section 6.3: a request with both Transfer-Encoding and Content-Length "might
# indicate an attempt to perform request smuggling ... and ought to be handled as an
# error"; a proxy in front that reads the other header would see another request
SMUGGLING = Refusal(400, "both Transfer-Encoding and Content-Length were sent (RFC 9112 "
                         "section 6.3); nothing of this request was read", close=True)  # fmt: skip


@dataclass
class DoorStats:
    """Counts since start: pushes refused for the bound (429), pushes answered 503
    while stopping, and pushes rejected at the door (``rejected``: no valid token 401,
    ingestion off 403, both ``Transfer-Encoding`` and ``Content-Length`` 400,
    ``Content-Length`` past ``logs.max_body`` 413, a chunked body
    past it 413, body not arrived within ``logs.body_timeout`` 408); and connections
    closed at the connection limit (:mod:`server.web.waitress_room`): ``evicted``, idle
    ones closed to make room for a newcomer, ``turned_away``, newcomers closed when none
    was idle."""

    refused: int = 0
    stopping: int = 0
    rejected: int = 0  # pushes answered 400/401/403/413 (their headers or size), or 408 (too slow)
    evicted: int = 0  # idle connections closed to make room at the connection limit
    turned_away: int = 0  # connections closed as accepted: at the limit, none idle
    reads_refused: int = 0  # reads answered 503: READS_PER_ADDRESS held by their address


class Door:
    """One server's bounds and counts (``stats``: shared by the servers a reload replaces
    one with another).

    Its bounds are ``logs``'s (:class:`~server.config.models.LogsConfig` is their one
    home, defaults included), changed by a reload (:meth:`configure`):
    ``logs.max_in_flight`` requests held and ``logs.max_in_flight_bytes`` of bodies they
    carry; a push alone is always admitted, however large, up to ``logs.max_body`` bytes
    (larger: 413 from its headers, its body never read). A push without a valid token
    (``logs.tokens``) is answered 401 from its headers, and every push 403 when no token
    is set; neither is held nor charged. ``logs.body_timeout``: s from a request's first
    byte to its last (else 408, closed).

    A request is charged what it can legally carry: a push its ``Content-Length``, or,
    chunked, the bytes received so far; a gzip body the most it may inflate to (its
    length times :data:`GZIP_RATIO`, at most ``max_body``). Requests to other paths are
    charged no bytes, and count against ``limit`` only once their body is in.
    """

    def __init__(self, logs: LogsConfig, stats: DoorStats | None = None) -> None:
        self.stats = stats or DoorStats()
        self.closing = False
        self._lock = threading.Lock()  # the counts change in waitress's I/O and task threads
        self._held: set[Parser] = set()  # requests held now (pushes among them: doomed())
        self._bytes = 0  # what they are charged, bytes
        self._pushes = 0  # pushes among them: logs.max_in_flight bounds these
        self._readers: dict[str, int] = {}  # client address -> reads it has held now
        self.configure(logs)

    def configure(self, logs: LogsConfig) -> None:
        """Take ``logs``'s bounds from now on (a reload)."""
        self.limit = logs.max_in_flight
        self.limit_bytes = int(logs.max_in_flight_bytes)
        self.max_body = int(logs.max_body)
        self.body_timeout = float(logs.body_timeout)
        self.tokens = PushTokens.of(logs)

    def held(self) -> int:
        """Requests the server holds now: headers in, answer not yet written, not refused."""
        return len(self._held)

    def carried(self) -> int:
        """Bytes the requests held are charged now (see the class)."""
        return self._bytes

    def hold(self, request: Parser) -> None:
        """``request`` is held from now on (a push: its headers are in and admitted; another:
        it is complete); counted once however often this is called."""
        charge = self.charge(request)
        with self._lock:
            if request.charged is not None:
                return
            request.charged = charge
            self._held.add(request)
            self._bytes += charge
            self._pushes += is_push(request)

    def recharge(self, request: Parser) -> None:
        """``request``'s body grew (chunked): charge it what it carries now, if held."""
        charge = self.charge(request)
        with self._lock:
            if request.charged is None:
                return
            self._bytes += charge - request.charged
            request.charged = charge

    def reading(self) -> int:
        """Reads held now (:meth:`admit_read`)."""
        return sum(self._readers.values())

    def admit_read(self, request: Parser) -> Refusal | None:
        """Whether ``request``, not a push, is refused (503) for the bound on reads: its
        client address (``host``) holds :data:`READS_PER_ADDRESS` (served or waiting);
        None: admitted, and counted as its address's until released (the dispatcher
        serves its threads less one of them at once: :mod:`server.web.read_lanes`).
        :data:`CHEAP_PATHS` (and ``/static/``) are always admitted, never counted."""
        if request.path in CHEAP_PATHS or request.path.startswith(CHEAP_PREFIXES):
            return None
        host = request.host()
        with self._lock:
            mine = self._readers.get(host, 0)
            if mine < READS_PER_ADDRESS:
                self._readers[host] = mine + 1
                request.reader = host
                return None
        return Refusal(
            503,
            f"busy: {mine} pages or API reads of this address are being "
            f"answered or waiting (at most {READS_PER_ADDRESS}); retry",
        )

    def release(self, request: Parser) -> None:
        """``request`` is no longer held (answered, refused, or its connection gone); once."""
        with self._lock:
            if request.reader is not None:
                left = self._readers.pop(request.reader) - 1
                if left:
                    self._readers[request.reader] = left
                request.reader = None
            if request.charged is None:
                return
            self._held.discard(request)
            self._bytes -= request.charged
            self._pushes -= is_push(request)
            request.charged = None

    def charge(self, request: Parser) -> int:
        """Bytes ``request`` is charged (see the class): 0 for other paths than pushes."""
        if not is_push(request):
            return 0
        if request.chunked:
            body = request.body_rcv
            got = len(body.buf) if body is not None else 0
        else:
            got = request.content_length
        if request.headers.get("CONTENT_ENCODING", "").strip().lower() in GZIP:
            got *= GZIP_RATIO
        return int(min(got, self.max_body))

    def judge(self, request: Parser) -> Refusal | None:
        """Whether ``request`` (headers just read) is refused; None: admitted."""
        if self.closing:
            return STOPPING
        if request.chunked and "CONTENT_LENGTH" in request.headers:
            return SMUGGLING
        if not is_push(request):
            return self.admit_read(request)
        if self.tokens.off:
            return Refusal(403, f"{OFF}; nothing of this request was read", close=True)
        authorization = request.headers.get("AUTHORIZATION", "")
        if not self.tokens.accepts(authorization):
            return Refusal(401, f"{REQUIRED}; nothing of this request was read", close=True,
                           headers=(("WWW-Authenticate", challenge(authorization)),))  # fmt: skip
        if request.content_length > self.max_body:
            return Refusal(413, f"body of {request.content_length:,} bytes is larger than "
                                f"logs.max_body ({self.max_body:,} bytes); not read",
                           close=True)  # fmt: skip
        with self._lock:
            held, size = self._pushes, self._bytes
        if held >= self.limit:
            why = f"{held} pushes are held (logs.max_in_flight is {self.limit})"
        elif size and size + self.charge(request) > self.limit_bytes:
            why = (f"{held} pushes carrying {size:,} bytes are held (logs.max_in_flight_bytes "
                   f"is {self.limit_bytes:,})")  # fmt: skip
        else:
            return None
        return Refusal(429, f"busy: {why}, being received, waiting or being stored; nothing "
                            "of this request was kept; retry")  # fmt: skip

    def doomed(self, now: float) -> Parser | None:
        """Of the held pushes whose body is still arriving, the slowest that cannot make it:
        received for at least :data:`MEASURE_AFTER` s (``now``: ``time.monotonic()``) and
        arriving slower than :data:`MIN_RATE`, or at a rate at which its
        ``Content-Length`` would arrive only after ``logs.body_timeout`` (it is answered
        408 then anyway); None when there is none."""
        slowest: tuple[float, Parser] | None = None
        with self._lock:
            pushes = [request for request in self._held if is_push(request)]
        for push in pushes:
            took = now - push.started
            if push.completed or took < MEASURE_AFTER:
                continue
            got = push.body_bytes_received
            rate = got / took
            left = self.body_timeout - took
            late = not push.chunked and rate * left < push.content_length - got
            if (rate < MIN_RATE or late) and (slowest is None or rate < slowest[0]):
                slowest = (rate, push)
        return slowest[1] if slowest else None

    def answered(self, refusal: Refusal, request: Parser) -> None:
        """Count ``refusal`` of a push, about to be written to its client (one thread
        answers them all); other requests turned away while stopping are not pushes
        refused."""
        if not is_push(request):
            if refusal.status == 503 and refusal is not STOPPING:
                self.stats.reads_refused += 1
            return
        if refusal.status == 503:
            self.stats.stopping += 1
        elif refusal.status == 429:
            self.stats.refused += 1
        else:
            self.stats.rejected += 1


def is_push(request: Parser) -> bool:
    """Whether ``request`` (a parsed request line) pushes logs: ``POST`` to a push path."""
    return bool(request.command == "POST" and request.path in PUSH_PATHS)
