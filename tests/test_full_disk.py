"""A real full filesystem (a small tmpfs, mounted for the test) under the spool or the database.

Counts after each fault: stored, set aside, lost. Needs root to mount (as CI and
this sandbox run); skipped elsewhere, failed in CI.
"""

from __future__ import annotations

import contextlib
import logging
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


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str, options: str = "") -> Iterator[SmallDisk]:
    """A tmpfs of ``size`` (``2m``; ``options`` as ``,nr_inodes=64``) mounted on ``path``
    while the block runs, lazily unmounted after; skips (fails on CI) unless root."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs",
                             str(path)], capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        message = f"cannot mount a tmpfs here ({result.stderr.strip()}); run as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_tmpfs(tmp_path / "small", "64m") as disk:
        yield disk


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
    with small_tmpfs(tmp_path / "tiny", "2m") as disk:
        yield disk


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


def pushed_numbers(store: EmbeddedStorage) -> list[int]:
    """``response_time_ms`` of every stored row, duplicates included."""
    return sorted(int(r["response_time_ms"]) for r in store.query(
        "SELECT response_time_ms FROM monitor.service_status"))  # fmt: skip


def push_until_refused(writer: Writer, start: int, size: int = 1) -> list[int]:
    """Push ``size``-row requests until one is refused for the disk; the numbers told 200.

    One-row requests by default: ~800 records on 2 MiB, so the mark naming them
    all (~5 KiB) needs more than the slack of a file's last page.
    """
    told: list[int] = []
    n = start
    while True:
        rows = [padded(n + i) for i in range(size)]
        try:
            writer.add_durable("service_status", rows)
        except Busy as busy:
            assert busy.status == 503
            return told
        told.extend(range(n, n + size))
        n += size


def test_a_spool_that_filled_its_own_disk_still_inserts_and_frees_it(
    store: EmbeddedStorage, tiny_disk: SmallDisk
) -> None:
    """The log fills its 2 MiB disk with records before any insert: marking them for
    insert must still find room, ClickHouse takes them, and pushes are taken again."""
    apply_schema(store, Target("monitor"))
    writer = Writer(store, Spool(tiny_disk.path / "spool", 256 * 2**20), columns=WRITTEN_TABLES)
    told = push_until_refused(writer, 0)
    assert len(told) > 600  # ~2 MiB of records
    writer.flush()
    assert pushed_numbers(store) == told  # each stored once
    assert not writer.inserter.stalled and writer.reachable
    assert writer.busy() is None
    again = push_until_refused(writer, 100_000)  # the room came back
    assert len(again) > 600
    writer.flush()
    assert pushed_numbers(store) == told + again
    assert (writer.stats.rows_dropped, writer.stats.write_errors) == (0, 0)


def crash(writer: Writer) -> None:
    """What kill -9 leaves of the writer's log: the files as written, nothing closed."""
    os.close(writer.spool.wal._fd)


def test_a_spool_disk_filled_to_the_last_byte_inserts_unmarked_and_never_twice(
    store: EmbeddedStorage, tiny_disk: SmallDisk
) -> None:
    """Not a byte left for a mark (another process took the reserve too): rows are
    inserted without one, and a kill -9 before their segment goes does not insert
    them again (the log says they may be stored; the storage is asked)."""
    apply_schema(store, Target("monitor"))
    spool = tiny_disk.path / "spool"
    writer = Writer(store, Spool(spool, 256 * 2**20), columns=WRITTEN_TABLES, batch_rows=500)
    told = push_until_refused(writer, 0)
    tiny_disk.fill()
    writer.inserter.insert_due(full_only=True)  # full batches only, as the loop between rounds
    stored_before_crash = pushed_numbers(store)
    assert 0 < len(stored_before_crash) < len(told)
    crash(writer)  # a segment holding rows stored unmarked is still there, beside waiting ones
    writer = Writer(store, Spool(spool, 256 * 2**20), columns=WRITTEN_TABLES)
    writer.flush()
    assert pushed_numbers(store) == told  # not a row twice, none lost
    tiny_disk.free()
    writer.add_durable("service_status", [row(500_000)])
    writer.flush()
    assert pushed_numbers(store) == [*told, 500_000]


@pytest.fixture
def tiny_disk_few_files(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_tmpfs(tmp_path / "few", "2m", ",nr_inodes=64") as disk:
        yield disk


def take_every_inode(disk: SmallDisk) -> list[Path]:
    """Create empty files until the filesystem has no inode left; returns them."""
    fillers = []
    for i in range(10_000):
        try:
            (disk.path / f"f{i}").touch()
        except OSError:
            return fillers
        fillers.append(disk.path / f"f{i}")
    raise AssertionError("the filesystem never ran out of inodes")


def test_a_spool_out_of_bytes_and_inodes_still_inserts_what_it_holds_once(
    store: EmbeddedStorage, tiny_disk_few_files: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """No byte and no inode to be had: the flag made ahead is renamed into place, the
    rows are inserted (unmarked), and a kill -9 then a start store none twice."""
    disk = tiny_disk_few_files
    apply_schema(store, Target("monitor"))
    spool = disk.path / "spool"
    writer = Writer(store, Spool(spool, 256 * 2**20), columns=WRITTEN_TABLES, batch_rows=500)
    told = push_until_refused(writer, 0)
    caplog.clear()  # the refusal was said; now the inserts
    disk.fill()
    fillers = take_every_inode(disk)
    writer.inserter.insert_due(full_only=True)
    assert not writer.inserter.stalled
    stored_before_crash = pushed_numbers(store)
    assert 0 < len(stored_before_crash) < len(told)
    crash(writer)
    writer = Writer(store, Spool(spool, 256 * 2**20), columns=WRITTEN_TABLES)
    writer.flush()
    assert pushed_numbers(store) == told  # none lost, none twice
    assert not writer.inserter.stalled and writer.reachable
    disk.free()
    for path in fillers:
        path.unlink()
    writer.add_durable("service_status", [row(500_000)])
    writer.flush()
    assert pushed_numbers(store) == [*told, 500_000]


@pytest.fixture
def disk_of_few_files(tmp_path: Path) -> Iterator[SmallDisk]:
    """Bytes to spare, 32 inodes."""
    with small_tmpfs(tmp_path / "files", "16m", ",nr_inodes=32") as disk:
        yield disk


def test_a_spool_out_of_inodes_only_keeps_taking_and_inserting_rows(
    store: EmbeddedStorage, disk_of_few_files: SmallDisk
) -> None:
    """Bytes free, no inode: the next segment was made ahead, then the last one grows;
    pushes are taken, marked and stored, and segments freed make the next file again."""
    disk = disk_of_few_files
    apply_schema(store, Target("monitor"))
    spool = Spool(disk.path / "spool", 256 * 2**20)
    spool.wal.segment_bytes = 64 * 2**10  # many rotations in a few MiB
    writer = Writer(store, spool, columns=WRITTEN_TABLES)
    fillers = take_every_inode(disk)
    told: list[int] = []
    for n in range(40):  # ~2 MiB: rotations with no new inode to be had
        rows = [padded(n * 50 + i) for i in range(50)]
        writer.add_durable("service_status", rows)
        told.extend(range(n * 50, n * 50 + 50))
        if n % 10 == 9:
            writer.flush()
    writer.flush()
    assert pushed_numbers(store) == told
    assert not writer.inserter.stalled and not writer.spool.wal.uncertain  # every mark written
    assert (writer.stats.write_errors, writer.stats.rows_dropped) == (0, 0)
    assert writer.spool.wal.size < 2**20 < 2000 * 1000  # stored segments were deleted
    for path in fillers:
        path.unlink()


def test_a_spool_starting_out_of_inodes_refuses_pushes_with_503_until_one_is_free(
    store: EmbeddedStorage, disk_of_few_files: SmallDisk
) -> None:
    """Bytes free, no inode, no spare made: the log has no file to write, and says so
    (``statvfs`` ``f_favail``) as a 503 before a push tries one."""
    disk = disk_of_few_files
    apply_schema(store, Target("monitor"))
    Spool(disk.path / "spool", 256 * 2**20).wal.close()  # its directories, from a last run
    for spare in (disk.path / "spool" / "wal").glob("*.spare"):
        spare.unlink()  # gone with that run: nothing made ahead
    fillers = take_every_inode(disk)
    writer = Writer(store, Spool(disk.path / "spool", 256 * 2**20), columns=WRITTEN_TABLES)
    assert not writer.spool.wal.writable
    refused = writer.spool_refuses()
    assert refused is not None and refused.status == 503, refused
    assert str(disk.path / "spool" / "wal") in str(refused)
    for path in fillers:
        path.unlink()
    assert writer.spool_refuses() is None
    writer.add_durable("service_status", [row(7)])  # the first push makes its file
    writer.flush()
    assert pushed_numbers(store) == [7] and writer.spool.wal.writable


@pytest.mark.parametrize("room_at_stop", [False, True])
def test_a_stop_keeps_what_it_says_it_keeps_and_counts_the_rest_lost(
    tiny_disk: SmallDisk, small_disk: SmallDisk, room_at_stop: bool
) -> None:
    """Check results held in memory (spool disk full, ClickHouse's disk full too) at a
    stop: written to the spool if it has room by then, else counted lost; what the
    stop says is kept is exactly what the next start stores."""
    store = EmbeddedStorage(small_disk.path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        spool = tiny_disk.path / "spool"
        writer = Writer(store, Spool(spool, 256 * 2**20), columns=WRITTEN_TABLES)
        small_disk.fill()  # ClickHouse refuses every insert: disk full
        for i in range(100):
            writer.add("service_status", padded(i))
        writer.commit()  # on disk
        tiny_disk.fill()
        for i in range(100, 400):
            writer.add("service_status", padded(i))
        writer.flush()  # held in memory: the spool's disk is full
        if room_at_stop:
            tiny_disk.free()
        writer.stop(timeout=0.5)
        kept = writer.pending_rows()
        assert (kept, writer.stats.rows_dropped) == ((400, 0) if room_at_stop else (100, 300))
        tiny_disk.free()
        small_disk.free()
        writer = Writer(store, Spool(spool, 256 * 2**20), columns=WRITTEN_TABLES)
        assert writer.pending_rows() == kept
        writer.flush()
        assert pushed_numbers(store) == list(range(kept))
    finally:
        store.close()


def test_a_lasting_database_disk_full_is_summed_up_once_a_minute_and_its_end_said_once(
    small_disk: SmallDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.clock import FakeClock

    clock = FakeClock()
    store = EmbeddedStorage(small_disk.path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        spool = Spool(tmp_path / "spool", 10**9)
        writer = Writer(store, spool, columns=WRITTEN_TABLES, clock=clock)
        small_disk.fill()
        caplog.set_level(logging.INFO, logger="lightbulb.writer")
        for i in range(13):  # a round every 10 s for two minutes
            writer.add("service_status", row(i))
            writer.flush()
            clock.advance(10)
        small_disk.free()
        writer.flush()
        said = [r.getMessage() for r in caplog.records if r.name == "lightbulb.writer"]
        assert [s.split(";")[0].split(":")[0] for s in said] == [
            "ClickHouse's disk is full",
            "ClickHouse still disk full",
            "ClickHouse still disk full",
            "ClickHouse takes writes again",
        ], said
        assert "(5 more failed attempts since the last such line)" in said[1]
        assert stored(store) == 13
    finally:
        store.close()
