"""The door's counts are kept as requests come and go, not by walking the connections:
judging a push costs the same with hundreds of connections open (a real waitress server
in this process, real sockets; the app is a plain WSGI callable)."""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Callable, Iterable

import pytest
from waitress.adjustments import Adjustments

from server.config.models import LogsConfig
from server.web import WebServer
from server.web.admission import MEASURE_AFTER, MIN_RATE, Door
from server.web.waitress_door import Parser
from tests.conftest import free_port, wait_until

HEAD = (b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k3n\r\n"
        b"Content-Length: 10\r\n\r\n")  # fmt: skip


def hello(environ: dict[str, object], start: Callable[..., object]) -> Iterable[bytes]:
    start("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def _cpu_per_judge(door: Door, request: Parser) -> float:
    """CPU seconds of this thread per :meth:`Door.judge`, the least of five rounds (the
    machine is shared: the least is the one least disturbed)."""
    rounds = []
    for _ in range(5):
        started = time.thread_time()
        for _ in range(200):
            assert door.judge(request) is None
        rounds.append((time.thread_time() - started) / 200)
    return min(rounds)


def test_judging_a_push_costs_the_same_with_hundreds_of_connections_open() -> None:
    door = Door(LogsConfig(tokens={"t": "t0k3n"}, max_in_flight=10_000))
    server = WebServer(hello, "127.0.0.1", free_port(), door=door)
    server.start()
    sockets: list[socket.socket] = []
    try:
        request = Parser(Adjustments(), door)
        request.received(HEAD)  # headers in, body not: held, as a real one arriving
        assert door.held() == 1 and door.carried() == 10
        alone = _cpu_per_judge(door, request)
        for _ in range(400):  # each with a request whose headers are still arriving
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST /api/v1/logs HTTP/1.1\r\n")
            sockets.append(sock)
        assert wait_until(lambda: len(server._server.active_channels) >= 400, 30)
        crowded = _cpu_per_judge(door, request)
        # walking 400 connections per judgement cost ~50 times a judgement's own work
        assert crowded < 3 * alone, (crowded, alone)
        assert door.held() == 1  # headers not in: none of them held
        request.close()
        assert door.held() == 0 and door.carried() == 0
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_the_door_takes_every_bound_from_logs_config_its_one_home() -> None:
    # it repeated LogsConfig's defaults in its own signature, where they could drift
    assert list(inspect.signature(Door).parameters) == ["logs", "stats"]
    logs = LogsConfig()
    door = Door(logs)
    bounds = (door.limit, door.limit_bytes, door.max_body, door.body_timeout)
    assert bounds == (logs.max_in_flight, logs.max_in_flight_bytes, logs.max_body,
                      logs.body_timeout)  # fmt: skip
    assert door.tokens.off
    door.configure(LogsConfig(max_in_flight=3, tokens={"t": "t0k3n"}))  # a reload
    assert door.limit == 3 and not door.tokens.off


def _arriving(door: Door, got: int) -> Parser:
    """A push held by ``door``: its headers and ``got`` bytes of its 100,000-byte body in."""
    request = Parser(Adjustments(), door)
    data = HEAD.replace(b"Content-Length: 10", b"Content-Length: 100000") + b"x" * got
    while data:  # as waitress's channel feeds it: the headers, then the body
        data = data[request.received(data) :]
    assert request.charged is not None and request.body_bytes_received == got  # held
    return request


def test_a_body_arriving_fast_enough_keeps_its_slot_one_too_slow_gives_it_up() -> None:
    door = Door(LogsConfig(tokens={"t": "t0k3n"}, max_in_flight=1, body_timeout=600))
    steady = _arriving(door, 4 * MIN_RATE)  # past MIN_RATE once a second old, in time
    newcomer = Parser(Adjustments(), door)
    newcomer.received(HEAD)
    assert newcomer.refusal is not None and newcomer.refusal.status == 429
    a_second_on = steady.started + 1.0
    assert door.doomed(steady.started + MEASURE_AFTER / 2) is None  # too young to judge
    assert door.doomed(a_second_on) is None  # 2,000 bytes/s: it keeps its slot
    assert door.doomed(a_second_on + 4.0) is steady  # stalled since: 400 bytes/s over 5 s
    steady.close()
    slow = _arriving(door, MIN_RATE // 2)
    assert door.doomed(slow.started + 1.0) is slow
    slow.close()
    assert door.held() == 0


def test_a_push_inside_the_unread_body_of_a_refused_one_is_never_judged() -> None:
    # were it parsed, a push at full speed (its body came with its headers) smuggled in a
    # 401's unread body would take the slot of a slow push held by the door (Door.doomed)
    door = Door(LogsConfig(tokens={"t": "t0k3n"}, max_in_flight=1, body_timeout=600))
    server = WebServer(hello, "127.0.0.1", free_port(), door=door)
    server.start()
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as refused,
    ):
        slow.sendall(HEAD.replace(b"Content-Length: 10", b"Content-Length: 100000") + b"x")
        assert wait_until(lambda: door.doomed(time.monotonic()) is not None, 30)
        smuggled = HEAD + b"0123456789"
        unauthorised = HEAD.replace(b"Authorization: Bearer t0k3n\r\n", b"").replace(
            b"Content-Length: 10", b"Content-Length: %d" % len(smuggled)
        )
        refused.sendall(unauthorised + smuggled)
        assert refused.recv(100).startswith(b"HTTP/1.1 401 ")
        # any read after that one is the I/O thread's next: it has parsed all of the 401's
        assert _get(server.port, "/healthz").startswith(b"HTTP/1.1")
        # the probe's own hold ends once its channel is done, a moment after its answer
        assert wait_until(lambda: door.held() == 1, 30), door.held()
        assert door.stats.rejected == 1  # the slow push kept its slot: no 408 for it
        slow.setblocking(False)
        with pytest.raises(BlockingIOError):
            slow.recv(100)
    server.stop()


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(100)
