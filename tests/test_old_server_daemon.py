"""A daemon pointed at a ClickHouse too old to use: refused, said so, never "unreachable"."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import ClickHouseServer, free_port
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons

__all__ = ["no_leaked_daemons"]


def test_a_daemon_against_a_server_too_old_says_refused_and_reads_nothing_from_it(
    clickhouse_server: ClickHouseServer, tmp_path: Path
) -> None:
    # the attacker's finding: the right ERROR, then "storage not reachable yet",
    # lightbulb_storage_reachable 0, and the daily report querying the refused server
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"clickhouse:\n  hosts: ['{clickhouse_server.address}']\n"
        f"  user: {clickhouse_server.USER}\n  password: {clickhouse_server.PASSWORD}\n"
        f"scheduler:\n  spool_dir: {tmp_path / 'spool'}\n"
        f"dashboard:\n  port: {port}\n"
        "report:\n  time: '00:00'\n  timezone: UTC\n"  # yesterday's report is due at once
        "services:\n  - {id: one, type: host, interval: 1s}\n"
    )
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("ClickHouse is reachable but refused to prepare storage")
    daemon.wait_for("checking anyway and spooling results")
    assert "storage refused (as logged above)" in daemon.output
    assert "not reachable yet" not in daemon.output
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "lightbulb_storage_reachable 1" in metrics, metrics
    assert "lightbulb_storage_writable 0" in metrics
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10)
        raise AssertionError("ready while storage refuses writes")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
    daemon.wait_for("waits until storage takes writes")  # yesterday's, due at once
    code, _took = daemon.stop()
    assert code == 0
    assert "not done (attempt" not in daemon.output  # nothing asked of a server that refuses
