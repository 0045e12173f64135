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
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ThreadedTaskDispatcher, WSGITask

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


class _Discard:
    """A body buffer that keeps nothing (a refused request's body), only its length."""

    def __init__(self) -> None:
        self.length = 0

    def append(self, data: bytes) -> None:
        self.length += len(data)

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        pass


class Parser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's request parser, judged by the door once its headers are read."""

    refusal: Refusal | None = None

    def __init__(self, adj: Any, door: Door) -> None:
        super().__init__(adj)
        self.door = door

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        self.refusal = self.door.judge(self)
        if self.refusal is None:
            return
        # Expect: 100-continue: the body was not sent yet, answer now and close
        if getattr(self, "expect_continue", False):
            self.expect_continue = False
            self.body_rcv = None
            self.refusal = Refusal(self.refusal.status, self.refusal.message, close=True)
        elif self.body_rcv is not None:
            self.body_rcv.buf = _Discard()  # never read: the answer is the refusal


class _Task(WSGITask):  # type: ignore[misc]
    """A request's task: the app's, or a refused request's short answer."""

    def execute(self) -> None:
        refusal: Refusal | None = self.request.refusal
        if refusal is None:
            super().execute()
            return
        body = json.dumps({"error": refusal.message}).encode()
        self.status = f"{refusal.status} {REASONS[refusal.status]}"
        self.response_headers = [("Content-Type", "application/json"),
                                 ("Retry-After", str(RETRY_AFTER))]  # fmt: skip
        if refusal.close:
            self.set_close_on_finish()
        self.content_length = len(body)
        self.complete = True
        self.write(body)
        self.channel.server.door.answered(refusal, self.request)


class Channel(HTTPChannel):  # type: ignore[misc]
    """A connection whose requests the door judges."""

    task_class = _Task

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        door: Door = server.door
        self.parser_class = lambda adj: Parser(adj, door)
        super().__init__(server, sock, addr, adj, map)


class Dispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's thread pool, with a lane of its own for refusals: a 429 or a stopping
    503 is answered at once, not after the held requests ahead of it."""

    def __init__(self, door: Door) -> None:
        super().__init__()
        self.door = door
        self._refusals: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lane = threading.Thread(target=self._answer_refusals, name="lightbulb-door",
                                      daemon=True)  # fmt: skip
        self._lane.start()

    def add_task(self, task: Any) -> None:
        request = task.requests[0]  # the channel's next request (waitress holds its lock)
        if request.refusal is None and self.door.closing:
            request.refusal = Refusal(503, "the daemon is stopping; retry", close=True)
        if request.refusal is not None:
            self._refusals.put(task)
            return
        super().add_task(task)

    def refuse_queued(self) -> int:
        """Every request waiting for a thread is answered 503 (the server stops); returns how
        many."""
        with self.lock:
            waiting = list(self.queue)
            self.queue.clear()
        for channel in waiting:
            channel.requests[0].refusal = Refusal(503, "the daemon is stopping; retry",
                                                  close=True)  # fmt: skip
            self._refusals.put(channel)
        return len(waiting)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self._refusals.put(None)
        return bool(super().shutdown(cancel_pending, timeout))

    def _answer_refusals(self) -> None:
        while True:
            channel = self._refusals.get()
            if channel is None:
                return
            try:
                channel.service()
            except Exception:  # one broken connection must not end the lane
                self.logger.exception("answering a refused request")
