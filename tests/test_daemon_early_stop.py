"""SIGTERM while ``lightbulb run`` is still importing and starting: a clean stop, exit 0.

Attack report 2, item 13c: SIGTERM within ~1.5 s of start exited 143 with nothing
logged. The test waits for the process's own state (the kernel's record that SIGTERM
is caught, /proc/<pid>/status SigCgt), not for time, then signals it mid-start.
"""

from __future__ import annotations

import signal
from pathlib import Path

from server import early_stop
from tests.conftest import wait_until
from tests.support.daemon import DaemonProcess


def _catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_sigterm_during_imports_is_a_clean_logged_stop(tmp_path: Path) -> None:
    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        f"scheduler: {{spool_dir: {tmp_path / 'spool'}}}\n"
        "dashboard: {enabled: false}\n"
        "services:\n  - {id: one, type: host, interval: 1s}\n"
    )
    daemon = DaemonProcess(config, tmp_path)
    assert wait_until(lambda: _catches_sigterm(daemon.proc.pid), 30)
    daemon.signal(signal.SIGTERM)  # imports take seconds: the daemon is not built yet
    assert daemon.proc.wait(60) == 0, daemon.output[-3000:]
    daemon._reader.join(5)
    assert "received SIGTERM during start-up" in daemon.output, daemon.output[-3000:]
    assert "stopped (" in daemon.output
    assert "Traceback" not in daemon.output, daemon.output[-5000:]


def test_other_programs_importing_lightbulb_keep_their_signals() -> None:
    assert signal.getsignal(signal.SIGTERM) is not early_stop._remember
