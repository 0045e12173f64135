"""A real daemon whose spool files are removed underneath while it idles.

The log put a removed segment back only when something new was appended: a daemon
with nothing to write (no pushes, checks far apart, a long insert interval) lost
every acknowledged record of it at the next ``kill -9``, silently (atk17: 517 of
517). The writer now looks at its files every flush interval. Rows are counted
against what the clients were told: 0 lost, 0 stored twice.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, write_config
from tests.test_descriptor_shortage_daemon import counted
from tests.test_full_spool_daemon import push_some

__all__ = ["no_leaked_daemons"]
QUIET = "  - {id: s0, type: host, interval: 1h}\n"  # one check at start, then none


def test_an_idle_daemon_puts_a_removed_segment_back_and_loses_nothing_at_kill_9(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(tmp_path, QUIET, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    config.write_text(config.read_text().replace("insert_interval: 200ms",
                                                 "insert_interval: 10m"))  # fmt: skip
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("start-up over", 60)
    pushed = push_some(f"http://127.0.0.1:{port}/api/v1/logs", 0, 300)
    wal = tmp_path / "spool" / "wal"
    (current,) = sorted(wal.glob("*.wal"))[-1:]
    current.unlink()
    # within a few flush intervals (200 ms), with nothing appended meanwhile (the
    # daemon's own row comes every 15 s)
    daemon.wait_for("copied back under its name", 5)
    assert current.exists()
    daemon.kill()
    again = DaemonProcess(config, tmp_path)
    again.wait_for("start-up over", 60)
    code, _ = again.stop()
    assert code == 0, again.output[-3000:]
    assert counted(tmp_path, pushed.acked) == (0, 0)
