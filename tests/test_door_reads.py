"""Expensive reads cannot take every thread: the server's threads less one serve them and
the others wait their turn, passed by probes and pushes; only past READS_PER_ADDRESS held
by one address is one answered 503 with Retry-After (issue 12's door; #14's dashboard
availability: a browser's tabs wait, never refused).

The server is real (waitress behind the door, on loopback, clients bound to addresses of
their own); the app is a plain WSGI callable whose expensive page waits until the test
lets it answer, since what is tested is the serving, not the pages."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterable, Iterator

import pytest

from server.config.models import LogsConfig
from server.web.admission import READS_PER_ADDRESS, RETRY_AFTER, Door
from server.web.serve import WebServer
from tests.conftest import free_port, wait_until

THREADS = 4  # the daemon's


class _App:
    """``/incidents`` and ``/api/v1/history`` wait for :attr:`gate`; anything else answers
    at once (a push's body read)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.inside = 0  # expensive requests being served now
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, object], start: Callable[..., object]) -> Iterable[bytes]:
        if environ["PATH_INFO"] in ("/incidents", "/api/v1/history"):
            with self.lock:
                self.inside += 1
            self.gate.wait(30)
        else:
            body = environ["wsgi.input"]
            body.read()  # type: ignore[attr-defined]
        start("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


@pytest.fixture
def served() -> Iterator[tuple[WebServer, _App]]:
    app = _App()
    door = Door(LogsConfig(tokens={"t": "t0k3n"}))  # type: ignore[dict-item]
    server = WebServer(app, "127.0.0.1", free_port(), threads=THREADS, door=door)
    server.start()
    try:
        yield server, app
    finally:
        app.gate.set()
        server.stop(grace=5)


def _ask(port: int, source: str, method: str, path: str, body: bytes = b"") -> tuple[int, str]:
    """One request from ``source`` on a connection of its own: status and Retry-After."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        headers = {"Authorization": "Bearer t0k3n"} if method == "POST" else {}
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status, answer.getheader("Retry-After", "")
    finally:
        conn.close()


def _in_threads(calls: list[Callable[[], tuple[int, str]]]) -> list[tuple[int, str]]:
    """Start each call in a thread of its own; their answers, as they come."""
    answers: list[tuple[int, str]] = []

    def run(call: Callable[[], tuple[int, str]]) -> None:
        answers.append(call())

    for call in calls:
        threading.Thread(target=run, args=(call,), daemon=True).start()
    return answers


def test_slow_pages_wait_their_turn_while_probes_and_pushes_pass_them(
    served: tuple[WebServer, _App],
) -> None:
    server, app = served
    port = server.port
    # one address asks for six slow pages at once (a browser's connections to a host):
    # three are served (the threads less one), three wait; none is refused
    flood = _in_threads([lambda: _ask(port, "127.0.0.2", "GET", "/incidents")] * 6)
    assert wait_until(lambda: app.inside == THREADS - 1 and server.door.reading() == 6, 10)
    # another address's read waits its turn too
    other = _in_threads([lambda: _ask(port, "127.0.0.3", "GET", "/api/v1/history")])
    assert wait_until(lambda: server.door.reading() == 7, 10)
    # while three threads are held by slow pages and four wait, probes and pushes are
    # served at once: they pass the waiting reads
    for _ in range(5):
        assert _ask(port, "127.0.0.2", "GET", "/healthz")[0] == 200
        assert _ask(port, "127.0.0.4", "POST", "/api/v1/logs", b'{"message": "m"}\n')[0] == 200
    assert app.inside == THREADS - 1 and not flood and not other
    app.gate.set()
    assert wait_until(lambda: len(flood) == 6 and len(other) == 1, 10)
    assert flood + other == [(200, "")] * 7
    assert server.door.stats.reads_refused == 0
    assert wait_until(lambda: server.door.reading() == 0, 10)


def test_one_address_past_its_bound_of_reads_is_answered_503(
    served: tuple[WebServer, _App],
) -> None:
    server, app = served
    port = server.port
    flood = _in_threads([lambda: _ask(port, "127.0.0.5", "GET", "/incidents")] * READS_PER_ADDRESS)
    assert wait_until(lambda: server.door.reading() == READS_PER_ADDRESS, 10)
    assert _ask(port, "127.0.0.5", "GET", "/incidents") == (503, str(RETRY_AFTER))
    assert server.door.stats.reads_refused == 1
    # another address is not refused for it: it waits its turn
    other = _in_threads([lambda: _ask(port, "127.0.0.6", "GET", "/incidents")])
    assert wait_until(lambda: server.door.reading() == READS_PER_ADDRESS + 1, 10)
    assert _ask(port, "127.0.0.6", "GET", "/healthz")[0] == 200
    app.gate.set()
    assert wait_until(lambda: len(flood) == READS_PER_ADDRESS and len(other) == 1, 20)
    assert flood + other == [(200, "")] * (READS_PER_ADDRESS + 1)
    # the bound is on reads held, not on reads made: the next ones are served
    assert wait_until(lambda: server.door.reading() == 0, 10)
    assert _ask(port, "127.0.0.5", "GET", "/incidents") == (200, "")


def test_reads_waiting_never_count_against_the_pushes_bound() -> None:
    """``logs.max_in_flight`` bounds pushes held: a dashboard's tabs (reads, bounded apart)
    once counted too, so pushes were answered 429 while an operator had many pages open
    (atk16: 2 of 160 pushes during 18 tabs). Here twice the bound of reads wait, and
    pushes are still taken."""
    app = _App()
    door = Door(LogsConfig(tokens={"t": "t0k3n"}, max_in_flight=2))  # type: ignore[dict-item]
    server = WebServer(app, "127.0.0.1", free_port(), threads=THREADS, door=door)
    server.start()
    try:
        port = server.port
        waiting = _in_threads([lambda: _ask(port, "127.0.0.7", "GET", "/incidents")] * 4)
        assert wait_until(lambda: door.reading() == 4 and door.held() == 4, 10)
        for _ in range(3):
            assert _ask(port, "127.0.0.8", "POST", "/api/v1/logs", b'{"message": "m"}\n') == (
                200, "",
            )  # fmt: skip
        assert door.stats.refused == 0
        app.gate.set()
        assert wait_until(lambda: len(waiting) == 4, 10)
    finally:
        app.gate.set()
        server.stop(grace=5)
