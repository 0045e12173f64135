"""The tcp checker against real local sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from checkers.base import CheckContext, Status
from checkers.tcp import TcpChecker, TcpSettings
from server.runner import run_check
from tests.conftest import free_port


@pytest.fixture
def echo_server() -> Iterator[int]:
    """Greets with a banner, then echoes upper-cased until the peer closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"+OK ready\r\n")
                data = conn.recv(1024)
                if data:
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def check(timeout: float = 2, **settings: Any) -> Any:
    return run_check(
        TcpChecker(TcpSettings(**settings)), CheckContext("t", datetime.now(UTC), timeout)
    )


def test_connect_is_ok_with_latency(echo_server: int) -> None:
    result = check(host="127.0.0.1", port=echo_server)
    assert result.status == Status.OK and result.metrics[0].name == "connect_time_ms"


def test_send_and_expect(echo_server: int) -> None:
    assert (
        check(host="127.0.0.1", port=echo_server, send="ping\n", expect="PING").status == Status.OK
    )
    wrong = check(host="127.0.0.1", port=echo_server, send="ping\n", expect="PONG", timeout=0.5)
    assert wrong.status == Status.FAILED and "expected 'PONG'" in wrong.message


def test_refused_is_failed() -> None:
    port = free_port()
    result = check(host="127.0.0.1", port=port)
    assert (result.status, result.message) == (
        Status.FAILED,
        f"127.0.0.1:{port}: connection refused",
    )
