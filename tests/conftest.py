"""Shared fixtures: real chDB stores and a real clickhouse-server process."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from server.config.models import ClickHouseConfig
from server.storage.embedded import EmbeddedStorage

if TYPE_CHECKING:
    from tests.support.receivers import HttpReceiver

REPO = Path(__file__).resolve().parents[1]
CLICKHOUSE_SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"


def require_binary(path: str, package: str) -> None:
    """Skip locally when a Debian package is missing; in CI a missing part is a failure."""
    if Path(path).exists() or shutil.which(path):
        return
    message = f"{path} not found: apt-get install -y {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(predicate: Callable[[], object], seconds: float = 10) -> bool:
    """Poll real state (a process, a thread's output) until it holds; False on timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _ephemeral_ports() -> range:
    """The ports the kernel hands out for outgoing connections and ``bind(0)``."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port that nothing uses now, for a server a test starts later.

    Picked outside the ephemeral range: a port from ``bind(0)`` is free when it is
    picked, but until the daemon binds it (seconds later on a loaded machine) any
    outgoing connection on the machine may be given it as its local port, and a
    benchmark running beside the suite opens tens of thousands of those ("already in
    use" at the daemon's start). Ports outside that range are only ever taken on
    purpose.
    """
    ephemeral = _ephemeral_ports()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, 65536)
        if port in ephemeral:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # somebody's: try another
            return port
    raise RuntimeError(f"no free loopback port outside {ephemeral} in 200 tries")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python <script or -m server.cli> args`` as a user would, capturing output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStorage]:
    """An empty embedded chDB store in the test's own directory."""
    storage = EmbeddedStorage(tmp_path / "chdb", "monitor")
    yield storage
    storage.close()


@pytest.fixture
def monitor_store(store: EmbeddedStorage) -> EmbeddedStorage:
    """:func:`store` with Lightbulb's schema applied (database ``monitor``)."""
    from server.schema import Target, apply_schema

    apply_schema(store, Target("monitor"))
    return store


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A loopback HTTP receiver of notices (webhook, Slack, PagerDuty, Apprise), per test."""
    from tests.support.receivers import HttpReceiver  # it imports this module's helpers

    server = HttpReceiver()
    yield server
    server.close()


class ClickHouseServer:
    """Debian's clickhouse-server (18.16) on a free loopback port, in a temp dir."""

    USER, PASSWORD = "lb", "s3cret-pw"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "config.xml").write_text(
            f"""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/err.log</errorlog></logger>
  <tcp_port>{self.port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
  <timezone>UTC</timezone>
  <remote_servers>
    <lb-local><shard><replica><host>127.0.0.1</host><port>{self.port}</port></replica></shard></lb-local>
    <lb_local><shard><replica><host>127.0.0.1</host><port>{self.port}</port></replica></shard></lb_local>
  </remote_servers>
</yandex>
"""
        )
        (root / "users.xml").write_text(
            f"""<?xml version="1.0"?>
<yandex>
  <profiles><default/></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <{self.USER}><password>{self.PASSWORD}</password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></{self.USER}>
  </users>
  <quotas><default/></quotas>
</yandex>
"""
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self, **overrides: object) -> ClickHouseConfig:
        values: dict[str, object] = {
            "hosts": [self.address],
            "user": self.USER,
            "password": self.PASSWORD,
            "database": "monitor",
        }
        values.update(overrides)
        return ClickHouseConfig.model_validate(values)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [CLICKHOUSE_SERVER, f"--config-file={self.root}/config.xml"],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.root / "err.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"clickhouse-server exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("clickhouse-server did not start listening within 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    require_binary(CLICKHOUSE_SERVER, "clickhouse-server")
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


# The session's Temporal dev server, shared by the Temporal checker tests (imported
# last: it uses free_port and require_binary from above).
from tests.support.temporal_server import temporal_server  # noqa: E402, F401
