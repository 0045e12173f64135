"""A ClickHouse that accepts connections and never answers: the daemon must not wait on it.

The "server" is a real listening socket that accepts and then says nothing (what
a hung server, or a port that swallows bytes, looks like to the driver). The
daemon is a real process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from server.config.models import ClickHouseConfig
from server.storage import StorageUnavailable
from server.storage.cluster import ClusterStorage
from tests.conftest import free_port
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, write_config

__all__ = ["no_leaked_daemons"]


class Silent:
    """Accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def timed_get(url: str, timeout: float = 30) -> tuple[int, float]:
    started = time.monotonic()
    answer = requests.get(url, timeout=timeout)
    return answer.status_code, time.monotonic() - started


def test_a_hung_clickhouse_delays_neither_the_web_nor_the_checks(
    tmp_path: Path, silent: Silent
) -> None:
    port = free_port()
    services = "  - {id: here, type: host, interval: 1s}\n"
    config = write_config(tmp_path, services, hosts=f"'127.0.0.1:{silent.port}'", port=port)
    daemon = DaemonProcess(config, tmp_path)
    base = f"http://127.0.0.1:{port}"
    daemon.wait_for("dashboard and API", 30)
    daemon.wait_for_checks("here", 2, 30)  # checks run though readiness never came
    assert silent.accepted >= 1  # the server was asked, and said nothing
    # pages that need ClickHouse, more at once than the web has threads
    with ThreadPoolExecutor(8) as pool:
        pages = [pool.submit(timed_get, f"{base}/") for _ in range(8)]
        pages += [pool.submit(timed_get, f"{base}/services/here") for _ in range(4)]
        # meanwhile what never needs ClickHouse answers at once
        for path in ("/healthz", "/metrics"):
            status, took = timed_get(base + path, timeout=10)
            assert status == 200 and took < 5, (path, took)
        answers = [p.result() for p in pages]
    assert all(status == 503 for status, _ in answers), answers
    # bounded: the read timeout (10 s) at most, then every call fails fast
    assert max(took for _, took in answers) < 25, answers
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert "lightbulb_storage_reachable 0" in metrics
    code, took = daemon.stop()
    assert code == 0 and took < 10, daemon.output
    assert "Traceback" not in daemon.output


def test_a_query_to_a_hung_server_times_out_once_and_later_ones_fail_fast(
    silent: Silent,
) -> None:
    store = ClusterStorage(
        ClickHouseConfig.model_validate({"hosts": [f"127.0.0.1:{silent.port}"]}),
        read_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="did not answer within 1 s"):
        store.query("SELECT 1")
    assert time.monotonic() - started < 5  # one timeout, not two (no retry of a hang)
    accepted = silent.accepted
    for _ in range(20):
        with pytest.raises(StorageUnavailable, match="not asked again"):
            store.query("SELECT 1")
    assert silent.accepted == accepted  # no thread tied up on the silent server
    store.close()
