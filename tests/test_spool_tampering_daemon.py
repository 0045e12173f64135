"""A real daemon whose spool files are removed underneath while it idles.

The log put a removed segment back only when something new was appended: a daemon
with nothing to write (no pushes, checks far apart, a long insert interval) lost
every acknowledged record of it at the next ``kill -9``, silently (atk17: 517 of
517). The writer now looks at its files every flush interval. Rows are counted
against what the clients were told: 0 lost, 0 stored twice. The test waits for the
watch's own word that it found the file (a sync finding it after the daemon's own row
is not the idle case, and is tried again), never for a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import free_port
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, write_config
from tests.test_descriptor_shortage_daemon import counted
from tests.test_full_spool_daemon import push_some

__all__ = ["no_leaked_daemons"]
QUIET = "  - {id: s0, type: host, interval: 1h}\n"  # one check at start, then none


def rescue(daemon: DaemonProcess, seen: int, seconds: float) -> str:
    """The daemon's ERROR saying a segment was copied back under its name, the next one
    after the first ``seen``, waited for ``seconds`` at most (its log, read as it comes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and daemon.proc.poll() is None:
        said = [line for line in list(daemon.lines) if "copied back under its name" in line]
        if len(said) > seen:
            return said[seen]
        time.sleep(0.05)
    raise AssertionError(f"no segment copied back in {seconds} s:\n{daemon.output[-3000:]}")


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
    for attempt in range(3):
        (current,) = sorted(wal.glob("*.wal"))[-1:]
        current.unlink()
        # the watch looks every flush interval (200 ms); a sync finds it only once
        # something is appended (the daemon's own row, every 15 s)
        if "(found by the watch)" in rescue(daemon, attempt, 20):
            break
        # the own row came first and a sync put it back: not the idle case; again
    else:
        raise AssertionError(f"the watch never found it:\n{daemon.output[-3000:]}")
    assert current.exists()
    daemon.kill()
    again = DaemonProcess(config, tmp_path)
    again.wait_for("start-up over", 60)
    code, _ = again.stop()
    assert code == 0, again.output[-3000:]
    assert counted(tmp_path, pushed.acked) == (0, 0)
