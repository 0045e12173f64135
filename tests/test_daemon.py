"""The daemon as a real process on chDB: rows, transitions, signals, reload, durable spool."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.storage.embedded import EmbeddedStorage
from server.wal import Wal
from tests.conftest import free_port, run_cli, wait_until
from tests.support.daemon import DaemonProcess, insert_what_the_spool_kept

WORKER = "import time\nwhile True: time.sleep(0.1)\n"


@pytest.fixture
def worker() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    tag = f"lb-daemon-test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, tag])
    yield proc, tag
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture(autouse=True)
def no_leaked_daemons() -> Iterator[None]:
    """A failing assertion must not leave a daemon running behind the test."""
    yield
    for daemon in DaemonProcess.started:
        if daemon.proc.poll() is None:
            daemon.kill()
    DaemonProcess.started.clear()


def write_config(
    tmp_path: Path, services: str, hosts: str = "", extra: str = "", port: int | None = None
) -> Path:
    config = tmp_path / "lightbulb.yaml"
    clickhouse = f"  hosts: [{hosts}]\n" if hosts else f"  embedded_path: {tmp_path / 'db'}\n"
    config.write_text(
        "clickhouse:\n"
        + clickhouse
        + f"scheduler:\n  spool_dir: {tmp_path / 'spool'}\n  flush_interval: 200ms\n"
        + "  insert_interval: 200ms\n"
        + f"dashboard:\n  port: {port or free_port()}\n"
        + extra
        + "services:\n"
        + services
    )
    return config


def query(tmp_path: Path, sql: str) -> list[dict[str, Any]]:
    """``sql`` on a stopped daemon's embedded store (``tmp_path/db``), once what its stop
    left in its spool (``tmp_path/spool``) is inserted, as its next start would.

    SIGTERM puts every row on disk but inserts only what ``WRITE_GRACE`` allows: on a
    loaded machine the last rows (a record written during the stop, say) wait in the
    spool for the next start, so ClickHouse alone is not yet the daemon's history.
    """
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        insert_what_the_spool_kept(store, tmp_path / "spool")
        return store.query(sql)
    finally:
        store.close()


def test_daemon_polls_writes_and_logs_transitions(tmp_path: Path, worker: Any) -> None:
    proc, tag = worker
    config = write_config(
        tmp_path,
        f"  - {{id: worker, type: python_process, interval: 1s,"
        f" python_process: {{cmdline: {tag}}}}}\n"
        f"  - {{id: web, type: http, interval: 1s, http: {{url: 'http://127.0.0.1:{free_port()}/'}}}}\n",
    )
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    daemon.wait_for_checks("worker", 2)  # a few intervals of a real process being up
    proc.kill()
    proc.wait()
    daemon.wait_for_checks("worker", 2)  # … and down
    code, took = daemon.stop()
    assert code == 0 and took < 10, daemon.output
    rows = query(
        tmp_path, "SELECT service_id, status_code FROM monitor.service_status ORDER BY timestamp"
    )
    worker_codes = [r["status_code"] for r in rows if r["service_id"] == "worker"]
    assert worker_codes[0] == 0 and worker_codes[-1] == 2
    assert {r["status_code"] for r in rows if r["service_id"] == "web"} == {2}
    transitions = query(
        tmp_path,
        "SELECT message, context FROM monitor.service_logs WHERE source = 'lightbulb.transition'",
    )
    assert len(transitions) == 1
    assert transitions[0]["message"].startswith("status changed OK -> FAILED: not running")
    assert transitions[0]["context"]["previous_status"] == "OK"
    assert (
        query(
            tmp_path, "SELECT count() AS n FROM monitor.service_metrics WHERE service_id = 'worker'"
        )[0]["n"]
        > 0
    )
    assert (
        query(
            tmp_path,
            "SELECT count() AS n FROM monitor.service_status WHERE service_id = 'lightbulb'",
        )[0]["n"]
        >= 1
    )
    # the daemon's own row carries its memory (a percent, like python_process) and RSS
    own = query(
        tmp_path,
        "SELECT max(memory_usage) AS memory, (SELECT max(metric_value) FROM "
        "monitor.service_metrics WHERE service_id = 'lightbulb' AND metric_name = 'rss_bytes') "
        "AS rss FROM monitor.service_status WHERE service_id = 'lightbulb'",
    )[0]
    assert 0 < own["memory"] < 100 and own["rss"] > 10 * 2**20


def test_sighup_applies_a_good_config_and_rejects_a_bad_one(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, "  - {id: one, type: host, interval: 1s}\n", port=port)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    config.write_text(config.read_text() + "  - {id: two, type: host, interval: 1s}\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(r"reloaded .*added \['two'\], removed none, changed none")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/services") as response:
        listed = {s["id"] for s in json.load(response)["services"]}
    assert {"one", "two"} <= listed  # the dashboard follows the reload
    daemon.wait_for_checks("two", 2)
    config.write_text(config.read_text() + "  - {id: three, type: host, interval: often}\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("reload rejected, keeping the running config")
    assert 'services[2].interval: expected a duration like "30s"' in daemon.output
    daemon.wait_for_checks("one", 2)  # the previous checks keep running
    code, _ = daemon.stop()
    assert code == 0
    counts = {
        r["service_id"]: r["n"]
        for r in query(
            tmp_path,
            "SELECT service_id, count() AS n FROM monitor.service_status GROUP BY service_id",
        )
    }
    assert counts.get("one", 0) >= 3 and counts.get("two", 0) >= 2 and "three" not in counts
    # the previous checks kept running after the rejected reload
    services = {
        r["service_id"]
        for r in query(tmp_path, "SELECT service_id FROM monitor.services FINAL WHERE enabled")
    }
    assert services == {"one", "two"}


def test_hanging_plugin_is_unknown_on_time_and_does_not_delay_others(tmp_path: Path) -> None:
    plugin = tmp_path / "check_hangs"
    plugin.write_text("#!/bin/sh\nsleep 60\n")
    plugin.chmod(0o755)
    config = write_config(
        tmp_path,
        f"  - {{id: hangs, type: command, interval: 1s, timeout: 500ms,"
        f" command: {{command: [{plugin}]}}}}\n"
        "  - {id: quick, type: host, interval: 1s}\n",
    )
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    daemon.wait_for_checks("hangs", 3)
    code, _ = daemon.stop()
    assert code == 0
    rows = query(tmp_path, "SELECT service_id, status_code, message FROM monitor.service_status")
    hung = [r for r in rows if r["service_id"] == "hangs"]
    quick = [r for r in rows if r["service_id"] == "quick"]
    assert hung and all(
        r["status_code"] == 5 and r["message"].endswith(": timed out after 0.5 s") for r in hung
    )
    # as many turns as the hung plugin had (give or take the one in flight): it took none of theirs
    assert len(quick) >= len(hung) - 1 >= 2


def test_sigterm_flushes_everything_and_exits_zero(tmp_path: Path) -> None:
    config = write_config(tmp_path, "  - {id: one, type: host, interval: 1s}\n")
    config.write_text(config.read_text().replace("flush_interval: 200ms", "flush_interval: 1m"))
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    daemon.wait_for_checks("one", 2)
    recorded = daemon.checks("one")
    code, took = daemon.stop()
    assert code == 0 and took < 10
    stored = query(
        tmp_path, "SELECT count() AS n FROM monitor.service_status WHERE service_id = 'one'"
    )[0]["n"]
    assert stored >= recorded >= 2  # nothing recorded before SIGTERM is lost


def spooled_status_rows(spool: Path, service_id: str) -> int:
    """Rows of ``service_id`` waiting in the write-ahead log (read-only, as `spool list` does)."""
    pending, open_batches = Wal(spool / "wal", 0, readonly=True).recover()
    wal = Wal(spool / "wal", 0, readonly=True)
    records = [*pending, *(r for b in open_batches for r in b.records)]
    return sum(
        wal.load(r).column("service_id").to_pylist().count(service_id)
        for r in records
        if r.table == "service_status"
    )


def test_kill_9_with_spool_then_restart_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    down = f"'127.0.0.1:{free_port()}'"
    config = write_config(tmp_path, "  - {id: one, type: host, interval: 1s}\n", hosts=down)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("ClickHouse unavailable, keeping rows in the spool")
    assert wait_until(lambda: spooled_status_rows(tmp_path / "spool", "one") >= 2, 30)
    daemon.kill()
    spooled = spooled_status_rows(tmp_path / "spool", "one")
    assert spooled >= 2
    # Same spool, now with a reachable (embedded) store and nothing to poll.
    config = write_config(tmp_path, "  []\n")
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for(r"rows from the spool wait for ClickHouse")
    daemon.wait_for("starting: ")  # signal handlers are in place from here on
    code, _ = daemon.stop()
    assert code == 0
    assert spooled_status_rows(tmp_path / "spool", "one") == 0
    rows = query(
        tmp_path,
        "SELECT count() AS n, uniqExact(timestamp) AS distinct_ts "
        "FROM monitor.service_status WHERE service_id = 'one'",
    )
    assert rows[0]["n"] == spooled == rows[0]["distinct_ts"]


def test_check_command_prints_one_result_without_writing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "  - {id: one, type: host}\n")
    result = run_cli("-m", "server.cli", "check", "one", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("one: OK (0) cpu ")
    assert "metric memory_percent" in result.stdout
    assert not (tmp_path / "db").exists()
    missing = run_cli("-m", "server.cli", "check", "nope", "--config", str(config))
    assert missing.returncode == 3 and "no service 'nope'" in missing.stderr
