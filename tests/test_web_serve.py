"""The dashboard's waitress server keeps answering in a process that holds many files.

The daemon embeds chDB, whose idle pool threads each keep three ``/proc`` files open
(1,779 of them in the test process after ~750 tests): sockets opened after that
are numbered past ``select()``'s limit of 1024. The server is real (waitress on a
loopback port), as is the HTTP client; the app is a plain WSGI callable, since what is
tested is the serving, not the pages.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Iterable, Iterator

import pytest
import requests

from server.web import WebServer
from tests.conftest import free_port

FD_SETSIZE = 1024  # glibc's select() limit: select() refuses a descriptor this high or higher


def hello(environ: dict[str, object], start: Callable[..., object]) -> Iterable[bytes]:
    start("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def crowded() -> Iterator[None]:
    """Open files until the next descriptor the process gets is past FD_SETSIZE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FD_SETSIZE + 64
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {need}")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    held: list[int] = []
    try:
        while not held or held[-1] < FD_SETSIZE:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_dashboard_answers_when_its_sockets_are_numbered_past_select_s_limit(
    crowded: None,
) -> None:
    server = WebServer(hello, "127.0.0.1", free_port())
    server.start()
    try:
        for _ in range(3):  # each request's connection is a new descriptor, also past 1024
            answer = requests.get(f"http://127.0.0.1:{server.port}/", timeout=10)
            assert (answer.status_code, answer.text) == (200, "hello")
    finally:
        server.stop()


def test_a_serving_loop_that_dies_closes_its_port_and_says_why(
    crowded: None, caplog: pytest.LogCaptureFixture
) -> None:
    server = WebServer(hello, "127.0.0.1", free_port())
    server._server.adj.asyncore_use_poll = False  # the real fault: select() past 1024
    server.start()
    try:
        server._thread.join(timeout=30)
        assert not server._thread.is_alive()
        with pytest.raises(requests.ConnectionError):  # refused, not accepted and left
            requests.get(f"http://127.0.0.1:{server.port}/", timeout=10)
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any("stopped serving (ValueError" in e for e in errors), errors
    finally:
        server.stop()
