"""The tcp checker against real local sockets."""

from __future__ import annotations

import contextlib
import re
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
from tests.support.hostile_targets import Endless


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
            with conn, contextlib.suppress(OSError):  # a checker may hang up unread: reset
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


def test_bracketed_ipv6_works_and_messages_bracket_it() -> None:
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]
    try:
        result = check(host="[::1]", port=port)
        assert result.status == Status.OK
        assert result.message.startswith(f"[::1]:{port}: connected in")
    finally:
        listener.close()
    refused = check(host="::1", port=port)
    assert (refused.status, refused.message) == (Status.FAILED, f"[::1]:{port}: connection refused")


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"host": "db", "port": 0}, "greater than or equal to 1"),
        ({"host": "db", "port": 65536}, "less than or equal to 65535"),
        ({"host": "[db]", "port": 5432}, "expected an IPv6 address inside [ ]"),
        ({"host": "db:5432", "port": 5432}, "no port: use `port`"),
        ({"host": "bad host", "port": 5432}, "expected a host name or IP address"),
    ],
)
def test_bad_hosts_and_ports_are_config_errors(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        TcpSettings(**settings)


def test_expect_on_an_endless_stream_reads_a_bounded_amount() -> None:
    stream = Endless()
    try:
        result = check(host="127.0.0.1", port=stream.port, expect="220 ready", timeout=5)
    finally:
        stream.close()
    assert result.status == Status.FAILED
    assert result.message.startswith(f"127.0.0.1:{stream.port}: expected '220 ready', got 'noise")
