"""A real full filesystem (a small tmpfs, mounted for the test) under the spool or the database.

Counts after each fault: stored, set aside, lost. Needs root to mount (as CI and
this sandbox run); skipped elsewhere, failed in CI.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.writer import Busy, Writer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Take every free byte, as another process filling the disk would."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (b"\0" * 65536, b"\0" * 512, b"\0"):
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.path.rglob("*.tmp"))


def mount_small(path: Path, size: str) -> SmallDisk:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        message = f"cannot mount a tmpfs here ({result.stderr.strip()}); run as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SmallDisk(path)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = mount_small(tmp_path / "small", "64m")
    yield disk
    subprocess.run(["umount", "-l", str(disk.path)], check=False)


def row(i: int) -> tuple[Any, ...]:
    return ("svc", T0 + timedelta(milliseconds=i), 0, f"check {i}", "http", "web", "{}", i,
            None, None)  # fmt: skip


def stored(store: EmbeddedStorage) -> int:
    return int(store.query("SELECT count() AS n FROM monitor.service_status")[0]["n"])


def test_a_full_spool_disk_refuses_pushes_with_503_and_keeps_check_results(
    store: EmbeddedStorage, small_disk: SmallDisk
) -> None:
    apply_schema(store, Target("monitor"))
    writer = Writer(store, Spool(small_disk.path / "spool", 10**9), columns=WRITTEN_TABLES)
    small_disk.fill()
    with pytest.raises(Busy) as refused:
        writer.add_durable("service_status", [row(0)])
    assert refused.value.status == 503 and "No space left" in str(refused.value)
    assert writer.busy() is not None and writer.busy().status == 503  # type: ignore[union-attr]
    for i in range(1, 501):  # check results keep coming while the disk is full
        writer.add("service_status", row(i))
        if i % 100 == 0:
            writer.flush()
    assert stored(store) == 500  # held in memory and inserted: none lost
    small_disk.free()
    writer.add_durable("service_status", [row(1000)])  # accepted again
    writer.flush()
    assert stored(store) == 501
    assert writer.busy() is None
    assert (writer.stats.rows_dropped, writer.stats.rows_set_aside) == (0, 0)
    assert small_disk.leftovers() == []


def test_a_full_database_disk_is_retried_not_set_aside(
    small_disk: SmallDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EmbeddedStorage(small_disk.path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        writer = Writer(store, Spool(tmp_path / "spool", 10**9), columns=WRITTEN_TABLES)
        small_disk.fill()
        for i in range(2000):
            writer.add("service_status", row(i))
            if i % 250 == 249:
                writer.flush()  # eight refused rounds, as eight seconds would be
        assert writer.pending_rows() == 2000
        assert not writer.reachable
        # said once, as what it is (not "ClickHouse unavailable": the server is right there)
        said = [r.getMessage() for r in caplog.records if r.name == "lightbulb.writer"]
        assert len(said) == 1 and said[0].startswith("ClickHouse's disk is full"), said
        small_disk.free()
        writer.flush()
        assert stored(store) == 2000
        assert writer.pending_rows() == 0
        assert (writer.stats.rows_set_aside, writer.stats.rows_dropped) == (0, 0)
        assert writer.spool.rejected() == []
        assert small_disk.leftovers() == []
    finally:
        store.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = mount_small(tmp_path / "tiny", "2m")
    yield disk
    subprocess.run(["umount", "-l", str(disk.path)], check=False)


def padded(i: int) -> tuple[Any, ...]:
    values = list(row(i))
    values[3] = f"check {i} " + "x" * 1000
    return tuple(values)


def test_a_spool_disk_smaller_than_a_segment_frees_room_as_rows_are_stored(
    store: EmbeddedStorage, tiny_disk: SmallDisk
) -> None:
    """2 MiB of disk, the default 256 MiB cap: ~10 MiB flows through, never refused."""
    apply_schema(store, Target("monitor"))
    writer = Writer(store, Spool(tiny_disk.path / "spool", 256 * 2**20), columns=WRITTEN_TABLES)
    for n in range(200):
        writer.add_durable("service_status", [padded(n * 50 + i) for i in range(50)])
        if n % 5 == 4:
            writer.flush()  # ClickHouse takes them, as every flush_interval would
    writer.flush()
    assert stored(store) == 200 * 50
    assert writer.busy() is None
    assert (writer.stats.rows_dropped, writer.stats.rows_set_aside) == (0, 0)


def test_a_push_refused_for_a_full_disk_is_not_stored_and_one_accepted_is(
    store: EmbeddedStorage, tiny_disk: SmallDisk
) -> None:
    """The answer matches the outcome even when buffered check results cannot be written."""
    apply_schema(store, Target("monitor"))
    writer = Writer(store, Spool(tiny_disk.path / "spool", 256 * 2**20), columns=WRITTEN_TABLES)
    for i in range(500):  # ~500 KiB of check results waiting in the buffer
        writer.add("service_status", padded(i))
    tiny_disk.fill()
    os.truncate(tiny_disk.filler, tiny_disk.filler.stat().st_size - 32 * 2**10)  # 32 KiB left
    told = []
    for n in range(10_000, 10_020):
        try:
            writer.add_durable("service_status", [row(n)])
            told.append(n)
        except Busy as busy:
            assert busy.status == 503
    writer.flush()
    pushed = {
        int(r["response_time_ms"])
        for r in store.query(
            "SELECT response_time_ms FROM monitor.service_status WHERE response_time_ms >= 10000"
        )
    }
    assert told and pushed == set(told)  # stored if and only if told so
    assert stored(store) == 500 + len(told)  # the check results waited in memory, then stored
    tiny_disk.free()
    assert writer.busy() is None  # room again: accepted at once, no timer
    writer.add_durable("service_status", [row(20_000)])
