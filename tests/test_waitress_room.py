"""The room's choice of the connection to close at the connection limit, on a real
waitress server behind the door with real loopback clients (each bound to an address of
its own): the test turns the server's I/O loop itself, one poll at a time, and pins the
time the room judges at (a daemon under real floods: tests/test_door_flood.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from waitress import wasyncore

from server.config.models import LogsConfig
from server.web.admission import MEASURE_AFTER, MIN_RATE, Door
from server.web.serve import WebServer
from server.web.waitress_door import Channel
from server.web.waitress_room import Kind, Room, kind, listen_backlog
from tests.conftest import free_port
from tests.support.flood import push_head

LATER = 10.0  # s after now: every connection is old enough to be judged


class _App:
    """Answers at once, but ``/slow`` only once :attr:`gate` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(self, environ: dict[str, object], start: Callable[..., object]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            self.gate.wait(30)
        start("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


class _Server:
    """A real server whose loop the test turns (:meth:`until`), and its clients."""

    def __init__(self) -> None:
        self.app = _App()
        door = Door(LogsConfig(tokens={"t": "t0k3n"}))  # type: ignore[dict-item]
        self.web = WebServer(self.app, "127.0.0.1", free_port(), door=door)  # not started
        self.room: Room = self.web._server.room
        self.clients: list[socket.socket] = []

    def until(self, holds: Callable[[], bool], turns: int = 500) -> bool:
        """Turn the I/O loop (a poll of at most 10 ms each) until ``holds``."""
        for _ in range(turns):
            if holds():
                return True
            wasyncore.poll2(0.01, self.web._server._map)
        return holds()

    def connect(self, source: str, send: bytes = b"") -> socket.socket:
        """A client from address ``source``, having sent ``send``."""
        client = socket.create_connection(("127.0.0.1", self.web.port), source_address=(source, 0))
        self.clients.append(client)
        if send:
            client.sendall(send)
        return client

    def channel(self, client: socket.socket, received: int = 0) -> Any:
        """The server's channel of ``client``, once it is open and has read ``received``
        bytes of it (its request's headers at least, if any)."""
        name = client.getsockname()
        found: list[Any] = []

        def seen() -> bool:
            found[:] = [c for c in self.web._server._map.values()
                        if isinstance(c, Channel) and c.addr == name]  # fmt: skip
            if not found or not received:
                return bool(found)
            request = found[0].request or (found[0].requests or [None])[0]
            return request is not None and _read(request) >= received

        assert self.until(seen), name
        return found[0]

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.app.gate.set()
        self.web.stop(grace=5)


def _read(request: Any) -> int:
    """Bytes of ``request`` read: its headers, then its body."""
    return len(request.header_plus or b"") + request.body_bytes_received if (
        request.headers_finished) else -1  # fmt: skip


@pytest.fixture
def server() -> Iterator[_Server]:
    served = _Server()
    try:
        yield served
    finally:
        served.close()


def _victim(room: Room, now: float) -> Any:
    """The room's choice at ``now`` (Any: comparing it must not narrow what it is
    compared with)."""
    return room.victim(now)


def test_connections_are_counted_by_address_as_they_come_and_go(server: _Server) -> None:
    a1, a2 = server.connect("127.0.0.11"), server.connect("127.0.0.11")
    server.connect("127.0.0.12")
    assert server.until(lambda: len(server.room) == 3)
    assert (server.room.held("127.0.0.11"), server.room.held("127.0.0.12")) == (2, 1)
    a1.close()
    a2.close()
    assert server.until(lambda: len(server.room) == 1)
    assert (server.room.held("127.0.0.11"), server.room.held("127.0.0.12")) == (0, 1)


def _post(path: str, length: int, body: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
            ).encode() + body  # fmt: skip


def test_what_a_connection_is_doing_decides_whether_and_when_it_goes(server: _Server) -> None:
    fast = int(MIN_RATE * 2 * MEASURE_AFTER) + 1  # bytes that make a body "at speed"
    silent = server.channel(server.connect("127.0.0.21"))
    heard = 0.0  # a connection's last bytes; of one without a request: when it opened
    # its headers still arriving
    partial = server.channel(server.connect("127.0.0.21", b"GET / HTTP/1.1\r\nHo"))
    assert server.until(lambda: partial.request is not None)
    # bodies of a form (never held) and of pushes (held by the door): slow and at speed
    slow = server.channel(server.connect("127.0.0.21", _post("/form", 10_000, b"abc")), 1)
    quick = server.channel(server.connect("127.0.0.21", _post("/form", 10_000, b"x" * fast)), 1)
    held_slow = server.channel(server.connect("127.0.0.21", push_head("t0k3n", 10_000) + b"abc"), 1)
    held_quick = server.channel(
        server.connect("127.0.0.21", push_head("t0k3n", 10_000) + b"x" * fast), 1
    )
    assert server.until(lambda: held_quick.request.body_bytes_received == fast)
    # a request being served (the app waits for the gate), from an address of its own
    busy = server.channel(server.connect("127.0.0.22", b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert server.until(lambda: bool(busy.requests))
    assert held_slow.request.charged is not None and slow.request.charged is None

    def at(channel: Any, after: float) -> Kind:  # judged ``after`` s from its first byte
        request = channel.request
        return kind(channel, heard, (request.started if request else heard) + after)

    judged = 2 * MEASURE_AFTER
    assert kind(silent, heard, heard + judged) is Kind.LOITERING  # nothing sent
    assert kind(silent, heard, heard + MEASURE_AFTER / 2) is Kind.ARRIVING  # too young
    assert at(partial, judged) is Kind.LOITERING
    assert at(slow, judged) is Kind.LOITERING
    assert at(quick, judged) is Kind.ARRIVING
    assert at(held_slow, judged) is Kind.HOLDING
    assert at(held_quick, judged) is Kind.SENDING
    assert at(held_slow, MEASURE_AFTER / 2) is Kind.SENDING  # too young to judge
    assert at(busy, judged) is Kind.BUSY


def test_the_biggest_holders_quietest_loiterer_goes_first_the_newest_connection_last(
    server: _Server,
) -> None:
    # a flood from one address: trickled bodies, one of them a push the door holds
    held = server.channel(server.connect("127.0.0.9", push_head("t0k3n", 10_000) + b"a"), 1)
    trickling = [server.channel(server.connect("127.0.0.9", _post("/form", 10_000, b"a")), 1)
                 for _ in range(3)]  # fmt: skip
    real = server.channel(server.connect("127.0.0.1"))  # a real client's, not yet read
    later = held.request.started + LATER
    assert _victim(server.room, later) is trickling[0]
    server.clients[1].sendall(b"b")  # heard from again: last of its address to go
    assert server.until(lambda: trickling[0].request.body_bytes_received == 2)
    assert _victim(server.room, later) is trickling[1]
    for client in server.clients[1:4]:
        client.close()
    assert server.until(lambda: server.room.held("127.0.0.9") == 1)
    # no loiterer left but the real client's silent one (judged young, at its start)
    assert _victim(server.room, held.request.started) is real
    server.clients[4].sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    assert server.until(lambda: bool(real.requests))  # being served: never closed
    assert _victim(server.room, later) is held
    held.will_close = True
    assert _victim(server.room, later) is None


@dataclass(eq=False)
class _Counted:
    """A stand-in that counts how often the room reads what it is doing. Only where a real
    channel cannot serve: counting how many connections a choice looks at, and states
    waitress does not produce on demand (entered twice, output still buffered); every
    other test of the room uses real ones."""

    addr: tuple[str, int]
    request: None = None
    requests: list[Any] = field(default_factory=list)
    total_outbufs_len: int = 0
    will_close: bool = False
    looked_at: int = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "requests":
            object.__setattr__(self, "looked_at", object.__getattribute__(self, "looked_at") + 1)
        return object.__getattribute__(self, name)


def test_finding_a_loiterer_reads_the_first_connections_not_every_one() -> None:
    now = 100.0
    channels = [_Counted(("10.0.0.9", n)) for n in range(500)]
    room = Room()
    for n, channel in enumerate(channels):
        room.enter(channel, now - 10 + n / 1000)
    assert room.victim(now) is channels[0]
    assert sum(c.looked_at for c in channels) == 1


def test_the_listen_backlog_is_the_kernels_most(tmp_path: Path) -> None:
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")
    assert listen_backlog(somaxconn) == 4096
    assert listen_backlog(tmp_path / "missing") == 4096


def test_entering_or_leaving_twice_counts_once_and_output_waiting_is_busy() -> None:
    """What the real-socket tests cannot reach on demand: waitress entering a channel
    twice or deleting it twice (counted once), and a connection whose answer still waits
    in its output buffers (never closed to make room: it is being served)."""
    a1, a2, b1 = _Counted(("10.0.0.1", 1)), _Counted(("10.0.0.1", 2)), _Counted(("10.0.0.2", 1))
    room = Room()
    for channel in (a1, a2, b1, a1):
        room.enter(channel, 0.0)
    assert (room.held("10.0.0.1"), room.held("10.0.0.2"), len(room)) == (2, 1, 3)
    for channel in (a1, a1, a2):
        room.leave(channel)
    assert (room.held("10.0.0.1"), room.held("10.0.0.2"), len(room)) == (0, 1, 1)
    answering = _Counted(("10.0.0.3", 1), total_outbufs_len=10)
    assert kind(answering, 0.0, 100.0) is Kind.BUSY
    assert kind(_Counted(("10.0.0.3", 2)), 0.0, 100.0) is Kind.LOITERING
