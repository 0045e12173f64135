"""`lightbulb spool` on set-aside batches, and /metrics + /healthz while ClickHouse is away."""

from __future__ import annotations

import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.recorder import STATUS_COLUMNS
from server.spool import Batch, Spool
from tests.conftest import free_port, run_cli, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def test_spool_list_replay_and_drop_set_aside_batches(tmp_path: Path) -> None:
    config = write_config(tmp_path, "  []\n")
    spool = Spool(tmp_path / "spool", 10**8)
    rows = [("svc", T0 + timedelta(seconds=i), 0, "m", "http", "web", "{}", i, None, None)
            for i in range(3)]  # fmt: skip
    spool.set_aside(Batch("b-one", "service_status", STATUS_COLUMNS, rows), "Code 469: no_poison")
    spool.set_aside(Batch("b-two", "service_status", STATUS_COLUMNS, rows[:1]), "Code 6: bad")
    listed = run_cli("-m", "server.cli", "spool", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert "0 rows wait for ClickHouse" in listed.stdout
    assert "2 batches set aside" in listed.stdout
    assert (
        "b-one  service_status  3 rows" in listed.stdout and "Code 469: no_poison" in listed.stdout
    )
    bare = run_cli("-m", "server.cli", "spool", "replay", "--config", str(config))
    assert bare.returncode != 0 and "or use --all" in bare.stderr
    replayed = run_cli("-m", "server.cli", "spool", "replay", "b-one", "--config", str(config))
    assert replayed.returncode == 0, replayed.stderr + replayed.stdout
    assert "b-one: 3 rows stored in service_status" in replayed.stdout
    again = run_cli("-m", "server.cli", "spool", "drop", "--all", "--config", str(config))
    assert "b-two: dropped (1 rows of service_status)" in again.stdout
    assert Spool(tmp_path / "spool", 10**8).rejected() == []
    assert query(tmp_path, "SELECT count() AS n FROM monitor.service_status")[0]["n"] == 3


def test_spool_list_and_drop_need_only_the_scheduler_settings_and_show_strays(
    tmp_path: Path,
) -> None:
    # in an outage, on a machine without the daemon's secrets: list and drop still run
    hook = "    - {id: hook, type: webhook, url: '${LB_UNSET_HOOK_URL}'}\n"
    config = write_config(tmp_path, "  []\n", extra=f"notifications:\n  channels:\n{hook}")
    spool = Spool(tmp_path / "spool", 10**8)
    rows = [("svc", T0, 0, "m", "http", "web", "{}", 0, None, None)]
    spool.set_aside(Batch("b-one", "service_status", STATUS_COLUMNS, rows), "Code 6: bad")
    (spool.rejected_dir / "notes.txt").write_text("an operator's note\n")
    (spool.rejected_dir / "broken.json").write_text("{not json\n")
    # a link to a batch file outside: never followed (atk21: read through, /etc/shadow)
    outside = tmp_path / "outside.json"
    outside.write_text((spool.rejected_dir / "b-one.json").read_text().replace("b-one", "b-two"))
    (spool.rejected_dir / "shadow.json").symlink_to(outside)
    os.mkfifo(spool.rejected_dir / "r-fifo.json")  # named as a batch, no file: never opened
    assert "LB_UNSET_HOOK_URL" not in os.environ
    listed = run_cli("-m", "server.cli", "spool", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert "1 batches set aside" in listed.stdout and "b-one" in listed.stdout
    assert "4 files in" in listed.stdout and "r-fifo.json: not a regular file" in listed.stdout
    assert "3 files in" not in listed.stdout and "broken.json: unreadable" in listed.stdout
    assert "notes.txt: not a set-aside batch" in listed.stdout and "b-two" not in listed.stdout
    assert "shadow.json: a symbolic link, not followed" in listed.stdout
    assert "problems elsewhere" in listed.stderr
    replay = run_cli("-m", "server.cli", "spool", "replay", "--all", "--config", str(config))
    assert replay.returncode == 2 and "LB_UNSET_HOOK_URL" in replay.stderr  # needs it all
    dropped = run_cli("-m", "server.cli", "spool", "drop", "--all", "--config", str(config))
    assert dropped.returncode == 0 and "b-one: dropped" in dropped.stdout
    again = run_cli("-m", "server.cli", "spool", "drop", "--all", "--config", str(config))
    assert again.returncode == 0 and "no batches set aside" in again.stdout
    assert sorted(p.name for p in spool.rejected_dir.iterdir()) == [
        "broken.json", "notes.txt", "r-fifo.json", "shadow.json"]  # fmt: skip
    assert "b-two" in outside.read_text()


def test_metrics_and_healthz_answer_from_memory_while_clickhouse_is_down(tmp_path: Path) -> None:
    port = free_port()
    down = f"'127.0.0.1:{free_port()}'"
    config = write_config(tmp_path, "  - {id: one, type: host, interval: 1s}\n", hosts=down,
                          port=port)  # fmt: skip
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("ClickHouse unavailable, keeping rows in the spool")
    daemon.wait_for("dashboard and API")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200
    scrapes: list[str] = []

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
            scrapes.append(response.read().decode())
        return scrapes[-1]

    line = 'lightbulb_service_status{service="one",stack="default",type="host"} 0.0'
    assert wait_until(lambda: line in scrape()), scrapes[-1]  # the first check's result
    text = scrapes[-1]
    assert "lightbulb_storage_reachable 0.0" in text
    assert "lightbulb_write_queue_rows " in text and "lightbulb_spool_bytes " in text
    code, _ = daemon.stop()
    assert code == 0


def test_a_symlink_in_place_of_rejected_is_never_written_through(tmp_path: Path) -> None:
    """A refused batch was written wherever a link at ``rejected/`` pointed (atk18, as
    ``quarantine/`` before it): the link is removed, its target left alone."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spool = Spool(tmp_path / "spool", 10**8)
    if spool.rejected_dir.is_dir():  # made with the spool
        spool.rejected_dir.rmdir()
    spool.rejected_dir.symlink_to(elsewhere)
    rows = [("svc", T0, 0, "m", "http", "web", "{}", 0, None, None)]
    path = spool.set_aside(Batch("b-one", "service_status", STATUS_COLUMNS, rows), "Code 6: bad")
    assert path.parent == spool.rejected_dir and not spool.rejected_dir.is_symlink()
    assert list(elsewhere.iterdir()) == [] and [b.id for b in spool.rejected()] == ["b-one"]
