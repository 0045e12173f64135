"""The embedded storage's descriptor check: cheap on every statement, and never blind to a
lowered limit.

The check runs before every chDB statement (dashboard reads included), so the count of
open descriptors is reused for a second while the headroom is wide; the limit itself
is read every time. Real chDB, a real ``setrlimit`` on this process.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest

from server.core import descriptors
from server.storage.base import DescriptorsShort
from server.storage.embedded import EmbeddedStorage
from server.web.serve import WebServer
from tests.conftest import free_port
from tests.test_web_serve import hello


def test_a_limit_lowered_right_after_a_wide_count_stops_the_next_statement(
    store: EmbeddedStorage,
) -> None:
    """A query counts (wide headroom, reused for a second); the limit then drops to 8 free:
    the very next statement is refused without entering chDB, the one after the limit is
    back runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft < len(os.listdir("/proc/self/fd")) + 4 * 64:
        pytest.skip("needs a finite open-files limit with room for a wide count")
    assert store.query("SELECT 1 AS n") == [{"n": 1}]  # counted now: reused for RECOUNT s
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    try:
        with pytest.raises(DescriptorsShort, match="open-files limit"):
            store.query("SELECT 1 AS n")
        assert descriptors.short() is not None
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert descriptors.short() is None
    assert store.query("SELECT 1 AS n") == [{"n": 1}]


@pytest.fixture
def soft_limit_1024() -> Iterator[int]:
    """This process's soft open-files limit lowered to systemd's default, 1,024; the hard
    limit it may be raised to returned; both put back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_daemon_started_under_a_1024_soft_limit_raises_it_to_the_hard_one(
    soft_limit_1024: int,
) -> None:
    """systemd's soft limit of 1,024 with the web server's 500 connections left the engine
    little room, and a shortage meeting an engine call can wedge it (atk16): the daemon
    raises its soft limit as Go programs do, up to the hard limit (or RAISE_TO)."""
    want = min(soft_limit_1024, descriptors.RAISE_TO)
    assert descriptors.raise_limit() == (1024, want)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == want
    assert descriptors.raise_limit() == (want, want)  # never lowered, nothing to do
    assert descriptors.raise_limit(target=2048) == (want, want)


def test_the_web_server_holds_fewer_connections_when_the_limit_leaves_little_room() -> None:
    """500 connections under a 1,024 limit would leave the engine too few descriptors."""
    assert descriptors.connections_within(20_000, 500) == 500
    assert descriptors.connections_within(1024, 500) == 384
    assert descriptors.connections_within(174, 500) == 32
    assert descriptors.connections_within(resource.RLIM_INFINITY, 500) == 500


def test_a_web_server_made_under_a_1024_limit_holds_at_most_384_connections(
    soft_limit_1024: int,
) -> None:
    """The bound is the one waitress enforces, read when the server is made."""
    server = WebServer(hello, "127.0.0.1", free_port())
    try:
        assert server._server.adj.connection_limit == 384
    finally:
        server.stop()
