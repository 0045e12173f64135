"""A real daemon whose spool's filesystem has no byte and no inode left.

It starts, serves /healthz, /metrics and the dashboard, inserts what the spool
holds, refuses pushes with 503 (never a 200 for a record not on disk), says what
is wrong once (naming the directory and the fix), keeps ClickHouse's figures
true to ClickHouse, and takes pushes again by itself once there is room. Rows
are counted: none acknowledged lost, none stored twice, none refused stored.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, query, write_config
from tests.test_durability import SERVICES, Pusher
from tests.test_full_disk import SmallDisk, small_tmpfs, take_every_inode

__all__ = ["no_leaked_daemons"]


@pytest.fixture
def spool_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_tmpfs(tmp_path / "spoolfs", "4m", ",nr_inodes=48") as disk:
        yield disk


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def keep_full(disk: SmallDisk, until: threading.Event, fillers: list[Path]) -> None:
    """Take every byte and inode that comes free, every 50 ms, until ``until`` is set."""
    while not until.wait(0.05):
        disk.fill()
        while True:
            path = disk.path / f"g{len(fillers)}"
            try:
                path.touch()
            except OSError:
                break
            fillers.append(path)


def failing(base: str) -> list[str]:
    """The parts ``/readyz`` names as failing."""
    answer = requests.get(f"{base}/readyz", timeout=5)
    return list(answer.json().get("failing", [])) if answer.status_code == 503 else []


def metric(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def push_some(url: str, start: int, count: int) -> Pusher:
    """Pushes until ``count`` records are acknowledged (within 60 s), then stops."""
    pusher = Pusher(url, start)
    pusher.start()
    assert wait_until(lambda: len(pusher.acked) >= count or not pusher.is_alive(), 60)
    pusher.stop.set()
    pusher.join(10)
    return pusher


def test_a_daemon_starts_on_a_spool_with_no_byte_and_no_inode_and_recovers_by_itself(
    tmp_path: Path, spool_disk: SmallDisk
) -> None:
    port = free_port()
    config = write_config(tmp_path, SERVICES, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    spool = spool_disk.path / "spool"
    config.write_text(config.read_text().replace(str(tmp_path / "spool"), str(spool)))
    url = f"http://127.0.0.1:{port}/api/v1/logs"
    # a first run leaves acknowledged records waiting in the spool (kill -9)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    first = push_some(url, 0, 300)
    daemon.kill()
    # its ingest workers notice their parent is gone and let go of the port
    assert wait_until(lambda: port_free(port), 30)
    spool_disk.fill()
    fillers = take_every_inode(spool_disk)
    # what the daemon frees (stored segments) is taken again at once, as by a filling disk
    full = threading.Event()
    taker = threading.Thread(target=keep_full, args=(spool_disk, full, fillers), daemon=True)
    taker.start()

    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    # what the spool held goes in although the spool can take no mark
    assert wait_until(lambda: metric(port, "lightbulb_rows_written_total") >= 300, 60)
    page = requests.get(f"{base}/", timeout=30)
    assert page.status_code == 200, page.text[:300]  # dashboard reads
    # the spool alone fails (the scheduler may not be running yet under load: not that)
    assert wait_until(lambda: failing(base) == ["spool"], 30), failing(base)
    ready = requests.get(f"{base}/readyz", timeout=5).json()
    assert ready["failing"] == ["spool"] and ready["storage"] is True, ready
    assert str(spool / "wal") in ready["spool_error"] and "df -i" in ready["spool_error"]
    refused = requests.post(url, data=b'{"service_id": "s0", "message": "no room"}',
                            headers={"Authorization": "Bearer t0k3n"}, timeout=5)  # fmt: skip
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert metric(port, "lightbulb_spool_writable") == 0
    # ClickHouse is fine, and its figures say so
    assert metric(port, "lightbulb_storage_reachable") == 1
    assert metric(port, "lightbulb_storage_writable") == 1
    assert metric(port, "lightbulb_inserts_stalled") == 0

    full.set()
    taker.join(5)
    spool_disk.free()
    for path in fillers:
        path.unlink()
    second = push_some(url, 1_000_000, 300)  # taken again: no restart, no operator
    assert len(second.acked) >= 300, second.answers[-3:]
    assert wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 30)
    assert metric(port, "lightbulb_spool_writable") == 1
    daemon.wait_for("takes writes again", 30)
    code, _ = daemon.stop()
    assert code == 0, daemon.output
    errors = [line for line in daemon.lines if "ERROR" in line]
    assert len(errors) == 1 and f"cannot write the spool at {spool / 'wal'}" in errors[0], errors
    blamed = ("ClickHouse unavailable", "ClickHouse's disk", "storage out of disk", "not reachable")
    assert not [line for line in daemon.lines if any(b in line for b in blamed)]

    rows = query(tmp_path, "SELECT splitByChar(' ', message)[1] AS id, count() AS n FROM "
                           "monitor.service_logs WHERE source = 'push' GROUP BY id")  # fmt: skip
    stored = {int(r["id"][1:]): int(r["n"]) for r in rows}
    acked = first.acked + second.acked
    refused_ids = first.refused + second.refused
    lost = sorted(set(acked) - set(stored))
    twice = sorted(n for n, count in stored.items() if count > 1)
    refused_but_stored = sorted(set(refused_ids) & set(stored))
    assert (len(lost), len(twice), len(refused_but_stored)) == (0, 0, 0), (
        lost[:5], twice[:5], refused_but_stored[:5])  # fmt: skip


@pytest.fixture
def small_spool_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_tmpfs(tmp_path / "spool2m", "2m") as disk:
        yield disk


def test_a_spool_filled_under_a_push_stream_is_not_ready_refuses_and_says_it_once(
    tmp_path: Path, small_spool_disk: SmallDisk
) -> None:
    """Another process keeps taking every byte the daemon frees, while ~1,000 records/s
    come in: /readyz says the spool is failing, pushes get 503. Then the disk flaps:
    freed until a push is taken, filled until one is refused, five times, each well
    within ``SETTLE`` s: one episode, so one ERROR is logged (not one per flap) and one
    "takes writes again" once writes have gone through for ``SETTLE`` s; and when the
    room comes back all is as before."""
    disk = small_spool_disk
    port = free_port()
    config = write_config(tmp_path, SERVICES, extra="logs:\n  tokens: {t: t0k3n}\n", port=port)
    spool = disk.path / "spool"
    config.write_text(config.read_text().replace(str(tmp_path / "spool"), str(spool)))
    url = f"http://127.0.0.1:{port}/api/v1/logs"
    base = f"http://127.0.0.1:{port}"
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    assert wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 60)
    pusher = Pusher(url, 0)
    pusher.start()
    assert wait_until(lambda: len(pusher.acked) >= 300, 60), pusher.answers[-3:]
    full = threading.Event()

    def keep_full() -> None:
        while not full.wait(0.05):
            disk.fill()

    filler = threading.Thread(target=keep_full, daemon=True)
    filler.start()
    try:
        assert wait_until(lambda: "spool" in failing(base), 60)
        ready = requests.get(f"{base}/readyz", timeout=5).json()
        assert ready["failing"] == ["spool"] and str(spool / "wal") in ready["spool_error"]
        refused_before = len(pusher.refused)
        assert wait_until(lambda: len(pusher.refused) >= refused_before + 100, 30)
        assert metric(port, "lightbulb_storage_reachable") == 1
    finally:
        full.set()
        filler.join(5)
        disk.free()
    flaps = 0
    for _ in range(5):  # taken, refused, taken, ...: each a success, then a failure
        acked, refused = len(pusher.acked), len(pusher.refused)
        assert wait_until(lambda: len(pusher.acked) > acked, 30), pusher.answers[-3:]  # noqa: B023
        # filled again at each look: what the daemon frees (stored segments) is taken
        assert wait_until(lambda: disk.fill() or len(pusher.refused) > refused, 30)  # noqa: B023
        disk.free()
        flaps += 1
    settled = [line for line in daemon.lines if "takes writes again" in line]
    assert flaps == 5 and settled == []  # one episode: not said while it flaps
    acked_before = len(pusher.acked)
    assert wait_until(lambda: len(pusher.acked) >= acked_before + 300, 60), pusher.answers[-3:]
    assert wait_until(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 30)
    pusher.stop.set()
    pusher.join(10)
    daemon.wait_for("takes writes again", 30)
    code, _ = daemon.stop()
    assert code == 0, daemon.output
    errors = [line for line in daemon.lines if "ERROR" in line]
    assert len(errors) == 1 and "cannot write the spool at" in errors[0], errors
    assert sum("takes writes again" in line for line in daemon.lines) == 1
    assert not [line for line in daemon.lines if "still cannot be written" in line]  # < 1 min
    rows = query(tmp_path, "SELECT splitByChar(' ', message)[1] AS id, count() AS n FROM "
                           "monitor.service_logs WHERE source = 'push' GROUP BY id")  # fmt: skip
    stored = {int(r["id"][1:]): int(r["n"]) for r in rows}
    lost = sorted(set(pusher.acked) - set(stored))
    twice = sorted(n for n, count in stored.items() if count > 1)
    refused_but_stored = sorted(set(pusher.refused) & set(stored))
    assert (len(lost), len(twice), len(refused_but_stored)) == (0, 0, 0), (
        lost[:5], twice[:5], refused_but_stored[:5])  # fmt: skip
