"""Expensive reads cannot take every thread: past two per client address, or the server's
threads less one in all, a page or API read is answered 503 with Retry-After, while
probes and pushes go on being served (issue 12's door; #14's dashboard availability).

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


def test_slow_pages_past_their_bounds_are_answered_503_and_probes_and_pushes_go_on(
    served: tuple[WebServer, _App],
) -> None:
    server, app = served
    port = server.port
    # one address asks for six slow pages at once: two are served, four answered 503
    flood = _in_threads([lambda: _ask(port, "127.0.0.2", "GET", "/incidents")] * 6)
    assert wait_until(lambda: app.inside == READS_PER_ADDRESS and len(flood) == 4, 10)
    assert sorted(flood) == [(503, str(RETRY_AFTER))] * 4
    # another address takes the last read (threads less one); a third is answered 503
    other = _in_threads([lambda: _ask(port, "127.0.0.3", "GET", "/api/v1/history")])
    assert wait_until(lambda: app.inside == THREADS - 1, 10)
    assert _ask(port, "127.0.0.4", "GET", "/incidents") == (503, str(RETRY_AFTER))
    # while three threads are held by slow pages, probes and pushes are served at once
    for _ in range(5):
        assert _ask(port, "127.0.0.2", "GET", "/healthz")[0] == 200
        assert _ask(port, "127.0.0.4", "POST", "/api/v1/logs", b'{"message": "m"}\n')[0] == 200
    assert (server.door.stats.reads_refused, server.door.reading()) == (5, THREADS - 1)
    app.gate.set()
    assert wait_until(lambda: len(flood) == 6 and len(other) == 1, 10)
    assert sorted(flood[4:] + other) == [(200, "")] * 3
    assert wait_until(lambda: server.door.reading() == 0, 10)
    # the bound is on reads held, not on reads made: the next ones are served
    app.gate.clear()
    app.gate.set()
    assert _ask(port, "127.0.0.2", "GET", "/incidents") == (200, "")
