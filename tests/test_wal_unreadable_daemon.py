"""A real daemon starts on a spool with a segment it may not read (``chmod 000``): one
ERROR naming the file and the fix, the file moved aside whole, every other acknowledged
push stored once, the daemon serving throughout.

The tests run as root, who reads any mode: the last daemon runs under ``setpriv``
without ``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH``, so the mode binds it
as it binds any other user (a real ``EACCES``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config
from tests.test_wal_damage_daemon import LOGS, SERVICE, metrics, pushed_in, segment_of, spooled

__all__ = ["no_leaked_daemons"]
NO_DAC = ("setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search", "--")  # fmt: skip


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_a_daemon_starts_on_a_segment_it_may_not_read_and_stores_every_other_push_once(
    tmp_path: Path,
) -> None:
    port, acked, wal, records, files = spooled(tmp_path, 2)
    spool = tmp_path / "spool"
    locked = files[1]  # neither the oldest nor the newest: the later ones are renumbered
    in_locked = {n for r in records if segment_of(spool, r) == locked
                 and r.table == "service_logs" for n in pushed_in(wal, r)}  # fmt: skip
    assert in_locked and len(files) >= 3, len(files)
    size = locked.stat().st_size
    locked.chmod(0)

    config = write_config(tmp_path, SERVICE, extra=LOGS, port=port)
    daemon = DaemonProcess(config, tmp_path, prefix=NO_DAC)
    daemon.wait_for("dashboard and API")
    assert wait_until(lambda: metrics(port).get("lightbulb_write_queue_rows") == 0, 60)
    figures = metrics(port)
    code, _ = daemon.stop()
    assert code == 0, daemon.output

    errors = [line for line in daemon.lines if " ERROR " in line]
    assert len(errors) == 1 and locked.name in errors[0], errors
    assert "Permission denied" in errors[0] and "chmod" in errors[0], errors
    assert figures["lightbulb_spool_damage_found_total"] == 1
    (moved,) = (spool / "quarantine").iterdir()
    assert moved.stat().st_size == size and moved.name in errors[0]
    listed = run_cli("-m", "server.cli", "spool", "list", "--config", str(config))
    assert moved.name in listed.stdout, listed.stdout + listed.stderr

    rows = query(tmp_path, "SELECT splitByChar(' ', message)[1] AS id, count() AS n FROM "
                           "monitor.service_logs GROUP BY id")  # fmt: skip
    stored = {int(r["id"][1:]): int(r["n"]) for r in rows if r["id"].startswith("p")}
    assert sorted(set(acked) - set(stored)) == sorted(in_locked)  # the locked file's, no other
    assert [n for n, count in stored.items() if count > 1] == []
