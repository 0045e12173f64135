"""waitress's parser, task, channel and thread pool, subclassed to apply the door
(:class:`server.web.admission.Door`): a request is judged once its headers are read, and a
refused one is answered from a lane of its own, its body thrown away as it arrives."""

from __future__ import annotations

import functools
import json
import queue
import socket
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ThreadedTaskDispatcher, WSGITask
from waitress.utilities import RequestEntityTooLarge, find_double_newline

from server.web.admission import (
    CLIENT_GONE,
    MIN_RATE,
    REASONS,
    RETRY_AFTER,
    STOPPING,
    Door,
    Refusal,
    is_push,
)
from server.web.read_lanes import Lanes
from server.web.waitress_room import host_of

# A push whose first read brought this much of its body (or all of it) with its headers is
# sending at full speed (a 1,000-record push is ~190 KB, one 256 KiB read): it may take a
# doomed push's slot (Parser._ready).
READY_BYTES = 64 * 1024


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
    """waitress's request parser, judged by the door once its headers are read, and
    counted by it while held (:meth:`Door.hold`, :meth:`Door.release`)."""

    refusal: Refusal | None = None
    command = ""  # set with ``path`` by a request line waitress could parse (else: its 400)
    path = ""
    charged: int | None = None  # bytes the door charges it while held; None: not held
    tail = 0  # bytes of its body that arrived in the read that ended its headers
    reader: str | None = None  # the client address it is counted for as a read (Door)

    def __init__(self, adj: Any, door: Door, channel: Any = None) -> None:
        super().__init__(adj)
        self.door = door
        self.channel = channel  # the connection it arrives on
        self.started = time.monotonic()  # its first byte: logs.body_timeout runs from here

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        self.refusal = self.door.judge(self)
        if self.refusal is not None and self.refusal.status == 429 and self._ready():
            doomed = self.door.doomed(time.monotonic())
            if doomed is not None and doomed.channel not in (None, self.channel):
                _expire(doomed.channel, doomed, f"the body arrived too slowly (under "
                        f"{MIN_RATE} bytes/s, or too slowly to end within logs.body_timeout) "
                        "while its slot was wanted")  # fmt: skip
                self.refusal = self.door.judge(self)
        if self.refusal is None:
            if is_push(self):  # held from its headers; other requests once complete
                self.door.hold(self)
            return
        # judged from the headers alone (400, 401, 403, 413), or Expect: 100-continue (the body
        # was not sent yet): answer now, never read the body, close
        if self.refusal.status in (400, 401, 403, 413) or getattr(self, "expect_continue", False):
            self.content_length = 0  # waitress's own max_body check: ours answered
            self.chunked = False
            self.expect_continue = False
            self.body_rcv = None
            self.refusal = replace(self.refusal, close=True)
        elif self.body_rcv is not None:
            self.body_rcv.buf = _Discard()  # never read: the answer is the refusal

    def host(self) -> str:
        """Its client's address (:func:`server.web.waitress_room.host_of`)."""
        return host_of(self.channel)

    def _ready(self) -> bool:
        """Whether this push's body came with its headers, whole or :data:`READY_BYTES` of
        it: a client sending at full speed, which may take a doomed push's slot. A
        trickling one may not (reopened as each is answered, such clients would take one
        another's slots as soon as each could be judged, and a real push never could)."""
        return not self.chunked and self.tail >= min(self.content_length, READY_BYTES)

    def received(self, data: bytes) -> int:
        if self.channel is not None and self.channel.refused_closing():
            return len(data)  # never a request: see Channel.refused_closing
        if self.refusal is not None and self.body_rcv is not None and not self.completed:
            return self._discard(data)
        if not self.headers_finished:  # the bytes of this read past the headers' end
            end = find_double_newline(self.header_plus + data)
            self.tail = len(self.header_plus) + len(data) - end if end >= 0 else 0
        consumed = int(super().received(data))
        if self.chunked and self.charged is not None:
            if isinstance(self.error, RequestEntityTooLarge):
                self._cut()
            else:
                self.door.recharge(self)
        if self.completed and not self.empty and self.refusal is None:
            self.door.hold(self)  # idempotent: a push is held already
        return consumed

    def refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` instead of serving it: no longer held."""
        self.refusal = refusal
        self.door.release(self)

    def close(self) -> None:
        """Served and answered (waitress calls this after the task): no longer held."""
        self.door.release(self)
        super().close()

    def _discard(self, data: bytes) -> int:
        """A refused body is read to its end and thrown away, past any size: the client,
        still sending, then reads its answer rather than a reset connection (one that never
        ends is closed at ``logs.body_timeout``, :func:`maintain`)."""
        body: Any = self.body_rcv
        consumed = int(body.received(data))
        self.body_bytes_received += consumed  # its rate, for the room (waitress_room.kind)
        if body.completed or body.error is not None:
            self.completed = True  # answered with its refusal, whatever the rest was
        return consumed

    def _cut(self) -> None:
        """A chunked push passed ``logs.max_body`` (waitress's check, set to it): what it
        kept is dropped, the rest is thrown away as it arrives (:meth:`_discard`), and it
        is answered 413 once it ends."""
        self.error = None
        body: Any = self.body_rcv
        self.completed = bool(body.completed or body.error is not None)
        kept, body.buf = body.buf, _Discard()
        kept.close()
        self.refuse(Refusal(413, f"chunked body larger than logs.max_body "
                                 f"({self.door.max_body:,} bytes); the rest was read and "
                                 "thrown away, nothing kept", close=True))  # fmt: skip


class _Task(WSGITask):  # type: ignore[misc]
    """A request's task: the app's, or a refused request's short answer."""

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        environ[CLIENT_GONE] = functools.partial(client_gone, self.channel)
        return environ

    def execute(self) -> None:
        refusal: Refusal | None = self.request.refusal
        if refusal is None:
            super().execute()
            return
        body = json.dumps({"error": refusal.message}).encode()
        self.status = f"{refusal.status} {REASONS[refusal.status]}"
        self.response_headers = [("Content-Type", "application/json"), *refusal.headers]
        if refusal.status in (429, 503):  # a wrong token or a body too large fails again
            self.response_headers.append(("Retry-After", str(RETRY_AFTER)))
        if refusal.close:
            self.set_close_on_finish()
        self.content_length = len(body)
        self.complete = True
        # counted before it is written: a client that reads the answer and then the
        # counters (/metrics, a test) sees it counted (it raced the count: CI, loaded)
        self.channel.server.door.answered(refusal, self.request)
        self.write(body)


def client_gone(channel: Any) -> bool:
    """Whether the client of ``channel`` closed its connection (or reset it).

    Asked from the thread serving the channel's request: waitress reads no more of a
    connection while a request of it is served (``channel_request_lookahead`` 0), so
    peeking races no reader. A half-closed client (shut down for writing, still reading)
    counts as gone: HTTP/1.1 clients do not do that (RFC 9112 §9.6 closes both ways).
    """
    if not channel.connected:
        return True
    try:
        peeked: bytes = channel.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False  # nothing to read: still there
    except OSError:
        return True  # reset
    return peeked == b""  # the end of its stream; bytes: it pipelined its next request


class Channel(HTTPChannel):  # type: ignore[misc]
    """A connection whose requests the door judges and counts."""

    task_class = _Task

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        door: Door = server.door
        self.parser_class = lambda adj: Parser(adj, door, self)
        super().__init__(server, sock, addr, adj, map)
        server.room.enter(self)

    def received(self, data: bytes) -> bool:
        """Bytes read: the connection was heard from (its place in the room)."""
        self.server.room.touch(self)
        return bool(super().received(data))

    def refused_closing(self) -> bool:
        """Whether a request of this connection was refused with a close: what arrives
        after it (its unread body, or anything pipelined behind it), in the same read or
        later ones, is thrown away (:meth:`Parser.received`), never parsed as requests of
        its own: bytes of a body must not be served as a request (request smuggling), nor
        break the answer. Read under waitress's ``requests_lock`` (in its ``received``)."""
        return any(r.refusal is not None and r.refusal.close for r in self.requests)

    def del_channel(self, map: Any = None) -> None:
        """The connection is closed: nothing of it is held any more (a request still being
        served finishes unanswered)."""
        super().del_channel(map)
        self.server.room.leave(self)
        for request in (self.request, *self.requests):
            if request is not None:
                request.door.release(request)


class Dispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's thread pool, with a lane of its own for refusals (a 429 or a stopping
    503 is answered at once, not after the held requests ahead of it) and its queue in
    two lanes (:class:`server.web.read_lanes.Lanes`): at most its threads less one reads
    served at once."""

    def __init__(self, door: Door) -> None:
        super().__init__()
        self.door = door
        self.queue = Lanes(self.lock, self.queue_cv, 1)  # set_thread_count sets the limit
        self._refusals: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lane = threading.Thread(target=self._answer_refusals, name="lightbulb-door",
                                      daemon=True)  # fmt: skip
        self._lane.start()

    def add_task(self, task: Any) -> None:
        request = task.requests[0]  # the channel's next request (waitress holds its lock)
        if request.refusal is None and self.door.closing:
            request.refuse(STOPPING)
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
            channel.requests[0].refuse(STOPPING)
            self._refusals.put(channel)
        return len(waiting)

    def set_thread_count(self, count: int) -> None:
        """``count`` threads, ``count`` less one of them for reads (at least one: with a
        single thread a read can hold it, which the daemon's four never allow)."""
        super().set_thread_count(count)
        if count > 0:  # 0: stopping (:meth:`shutdown` lets every read go to be cancelled)
            with self.lock:
                self.queue.limit = max(1, count - 1)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        with self.lock:
            self.queue.limit = sys.maxsize  # every read waiting may be taken, to be cancelled
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


def maintain(server: Any, now: float) -> None:
    """waitress's periodic look at the connections (``server.maintenance``, every
    ``cleanup_interval`` s in its I/O thread): idle ones past ``channel_timeout`` close,
    requests past the door's ``body_timeout`` are answered 408 (or closed, headers not
    even in). Room at the connection limit is made as connections come
    (:mod:`server.web.waitress_room`)."""
    type(server).maintenance(server, now)
    door: Door = server.door
    started = time.monotonic() - door.body_timeout
    channels = list(server.active_channels.values())
    for channel in channels:
        pending = channel.request
        if pending is not None and pending.started < started and not channel.will_close:
            _expire(channel, pending)


def _expire(channel: Any, pending: Parser, why: str = "") -> None:
    """``pending`` came in too slowly: answered 408 (``why``, or that it missed
    ``logs.body_timeout``) and closed, its slot freed."""
    with channel.requests_lock:
        if channel.request is not pending or channel.requests:
            return  # completed meanwhile, or behind a request being served: its turn next
        channel.request = None
        if not pending.headers_finished or pending.refusal is not None:
            channel.will_close = True  # no request line to answer, or refused already
            return
        timeout = channel.server.door.body_timeout
        why = why or f"the request did not arrive within logs.body_timeout ({timeout:g} s)"
        pending.refuse(Refusal(408, f"{why}; nothing of it was kept", close=True))
        pending.completed = True
        channel.requests.append(pending)
        channel.server.add_task(channel)
