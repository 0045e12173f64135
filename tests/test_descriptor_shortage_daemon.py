"""A real daemon short of file descriptors, and one whose engine call never comes back.

chDB meeting ``EMFILE`` inside a query wedged the writer for good after an 8 s
shortage, and SIGTERM then waited on it forever (atk12d F4). Here the shortage is
real (``prlimit`` on the running daemon): no insert round begins, it is said once
and counted, and inserts resume by themselves once the limit is back. The wedge is
a real blocked system call (an insert stuck reading a FIFO, as chDB's was stuck):
SIGTERM still exits within the README's 10 s with one ERROR, and the next start
stores what the spool kept. Rows are counted: 0 lost, 0 stored twice.
"""

from __future__ import annotations

import errno
import os
import re
import resource
from pathlib import Path

import pytest
import requests

from server.core import descriptors
from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config
from tests.test_durability import SERVICES
from tests.test_full_spool_daemon import push_some

__all__ = ["no_leaked_daemons"]
WEDGE = Path(__file__).parent / "support" / "wedge"


def metric(port: int, name: str) -> float | None:
    """The daemon's ``name`` from /metrics; None if it did not answer."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return None
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def counted(tmp_path: Path, acked: list[int]) -> tuple[int, int]:
    """(acknowledged records not stored, records stored more than once)."""
    rows = query(tmp_path, "SELECT splitByChar(' ', message)[1] AS id, count() AS n FROM "
                           "monitor.service_logs WHERE source = 'push' GROUP BY id")  # fmt: skip
    stored = {int(r["id"][1:]): int(r["n"]) for r in rows}
    return len(set(acked) - set(stored)), sum(1 for n in stored.values() if n > 1)


def test_short_of_descriptors_no_insert_begins_and_inserts_resume_by_themselves(
    tmp_path: Path,
) -> None:
    """The tester's shortage: a few descriptors to spare for seconds, then the limit
    back. chDB's own threads take what is left meanwhile (3 ``/proc`` files each), so
    HTTP may not even be answered: the daemon's log is read instead."""
    port = free_port()
    config = write_config(tmp_path, SERVICES, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    url = f"http://127.0.0.1:{port}/api/v1/logs"
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    first = push_some(url, 0, 300)
    # ready: the start's own engine work is over (a query under way when the limit
    # drops is not shielded: the stop path bounds that case, the next test)
    assert wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz",
                                           timeout=5).status_code == 200, 60)  # fmt: skip
    pid = daemon.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{pid}/fd")) + 8, hard))
    try:
        daemon.wait_for("inserts wait:", 30)
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    daemon.wait_for("file descriptors to spare again", 30)
    assert wait_until(lambda: metric(port, "lightbulb_inserts_stalled") == 0, 30)
    assert (metric(port, "lightbulb_insert_descriptor_waits_total") or 0) >= 1
    written = metric(port, "lightbulb_rows_written_total") or 0
    second = push_some(url, 1_000_000, 300)
    # the engine takes inserts again: the writer was never wedged
    assert wait_until(lambda: (metric(port, "lightbulb_rows_written_total") or 0)
                      >= written + len(second.acked), 30), daemon.output[-3000:]  # fmt: skip
    code, _ = daemon.stop()
    assert code == 0, daemon.output[-3000:]
    said = [line for line in daemon.lines if "inserts wait:" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "open-files limit" in said[0], said
    writer = [line for line in daemon.lines if "ERROR lightbulb.writer" in line]
    assert writer == [], writer
    assert len(second.acked) >= 300
    assert counted(tmp_path, first.acked + second.acked) == (0, 0)


def test_a_daemon_started_under_a_1024_soft_limit_runs_under_the_hard_one(
    tmp_path: Path,
) -> None:
    """As ``systemd`` starts it (LimitNOFILE soft 1,024): the running daemon's own limit,
    read from ``/proc``, is raised and said once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves nothing to raise to")
    config = write_config(tmp_path, SERVICES, port=free_port())
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        daemon = DaemonProcess(config, tmp_path)  # inherits the 1,024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    daemon.wait_for("start-up over", 60)
    want = min(hard, descriptors.RAISE_TO)
    assert resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE)[0] == want
    code, _ = daemon.stop()
    assert code == 0
    said = [line for line in daemon.lines if "open-files limit raised" in line]
    assert len(said) == 1 and f"from 1024 to {want}" in said[0], said


def test_sigterm_exits_within_10_s_with_an_engine_call_wedged_and_the_spool_is_kept(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(tmp_path, SERVICES, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    fifo = tmp_path / "wedge"
    os.mkfifo(fifo)
    env = {"PYTHONPATH": str(WEDGE), "LB_TEST_WEDGE_FIFO": str(fifo), "LB_TEST_HUNG_AFTER": "2"}
    daemon = DaemonProcess(config, tmp_path, env=env)
    daemon.wait_for("start-up over")  # started as ever: only pushed logs' inserts wedge
    pushed = push_some(f"http://127.0.0.1:{port}/api/v1/logs", 0, 300)
    held: list[int] = []

    def wedged() -> bool:
        """An insert is blocked in open(FIFO): open its write end (kept open, never
        written), so it stays blocked in read."""
        try:
            held.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            assert exc.errno == errno.ENXIO  # no reader yet
            return False
        return True

    assert wait_until(wedged, 30), daemon.output[-3000:]
    try:
        # the hang is seen (atk16: pushes refused for good with nothing said): /metrics,
        # /readyz, and one ERROR from the self-monitoring (every 15 s)
        assert wait_until(lambda: metric(port, "lightbulb_inserts_stalled") == 1, 30)
        assert (metric(port, "lightbulb_insert_call_seconds") or 0) > 2
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["failing"] == ["storage"]
        daemon.wait_for("an insert has been in ClickHouse for", 40)
        code, took = daemon.stop()
    finally:
        os.close(held[0])
    assert took < 10 and code == 1, (took, code, daemon.output[-3000:])
    errors = [line for line in daemon.lines if "ERROR" in line]
    assert len(errors) == 2 and "not come back" in errors[0], errors
    errors = errors[1:]
    assert "did not close" in errors[0] and "rows stay in the spool" in errors[0]
    assert str(tmp_path / "spool" / "wal") in errors[0]
    assert counted(tmp_path, pushed.acked) == (0, 0)  # the next start stores them, once
