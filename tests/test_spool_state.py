"""A spool whose disk fills and frees again and again says so once, not once a write.

A real writer on a real small tmpfs (mounted for the test, as in test_full_disk),
its filesystem filled and freed 60 times in 20 s; the clock is pinned and moved.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.schema import Target, apply_schema
from server.spool import Spool
from server.spool_state import SETTLE, SpoolState
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.writer import Busy, Writer
from tests.support.clock import FakeClock
from tests.test_full_disk import SmallDisk, pushed_numbers, row, small_tmpfs


@pytest.fixture
def flapping_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_tmpfs(tmp_path / "flap", "2m") as disk:
        yield disk


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "lightbulb.writer"]


def test_a_filling_disk_is_one_error_a_summary_a_minute_and_one_recovery_once_settled(
    store: EmbeddedStorage, flapping_disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    apply_schema(store, Target("monitor"))
    clock = FakeClock()
    spool = Spool(flapping_disk.path / "spool", 256 * 2**20)
    writer = Writer(store, spool, columns=WRITTEN_TABLES, clock=clock)
    caplog.set_level(logging.INFO, logger="lightbulb.writer")
    told, refused, ready = [], 0, []
    for n in range(60):  # 20 s: full, then room, three times a second
        if n % 2:
            flapping_disk.fill()
        else:
            flapping_disk.free()
        try:
            writer.add_durable("service_status", [row(n)])
            told.append(n)
        except Busy as busy:
            assert busy.status == 503
            refused += 1
        ready.append(writer.spool_writable)  # what /readyz says
        clock.advance(1 / 3)
    assert (len(told), refused) == (30, 30)
    assert ready == [True] + [False] * 59  # one flip, not thirty
    lines = said(caplog)
    assert [level for level, _ in lines] == ["ERROR"], lines  # not 60 lines
    assert f"cannot write the spool at {spool.wal.directory}" in lines[0][1]
    assert "df -i" in lines[0][1]  # the fix, named
    assert not writer.spool_writable  # /readyz: not ready
    flapping_disk.free()
    caplog.clear()
    for n in range(100, 100 + int(SETTLE) + 1):  # writable again, one write a second
        writer.add_durable("service_status", [row(n)])
        told.append(n)
        assert writer.spool_writable == (n - 100 >= SETTLE)  # ready once settled, not before
        if clock.advance(1) and n < 100 + SETTLE - 1:
            assert said(caplog) == []  # not yet settled: not said
    assert said(caplog) == [
        ("INFO", f"the spool at {spool.wal.directory} takes writes again (30 writes failed "
                 "meanwhile)"),
    ]  # fmt: skip
    caplog.clear()
    flapping_disk.fill()
    for _ in range(130):  # full for 65 s, two pushes a second
        with pytest.raises(Busy):
            writer.add_durable("service_status", [row(999)])
        clock.advance(0.5)
    levels = [level for level, _ in said(caplog)]
    assert levels == ["ERROR", "WARNING"], said(caplog)  # then once a minute
    assert "(119 more failed writes since the last such line)" in said(caplog)[1][1]
    flapping_disk.free()
    writer.flush()
    assert pushed_numbers(store) == told  # stored if and only if told so


@pytest.mark.parametrize(
    ("code", "fix"),
    [(errno.ENOSPC, "df -h, df -i"), (errno.ENOENT, "directory was removed"),
     (errno.EACCES, "write access"), (errno.EROFS, "read-only"),
     (errno.EISDIR, "something else stands")],
)  # fmt: skip
def test_a_failed_spool_write_names_the_fix_for_its_own_cause(
    tmp_path: Path, code: int, fix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every failed write was told "free bytes and inodes (df -h, df -i)", a missing
    directory or a permission too (atk18)."""
    state = SpoolState(tmp_path / "spool", FakeClock())
    state.failed(OSError(code, os.strerror(code)))
    assert fix in state.problem()
    assert ("df -h" in state.problem()) == (code == errno.ENOSPC)
    assert fix in said(caplog)[0][1]


def test_a_spool_directory_gone_underneath_is_one_error_and_refused_pushes_not_a_traceback_a_second(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``wal/`` renamed away while the daemon runs: the watch cannot put its segment back
    (no directory to copy into); the writer's loop logged a traceback every second
    (atk18). It is the spool's failure: said once with its fix, pushes refused."""
    apply_schema(store, Target("monitor"))
    spool = Spool(tmp_path / "spool", 256 * 2**20)
    writer = Writer(store, spool, columns=WRITTEN_TABLES, clock=FakeClock())
    writer.add_durable("service_status", [row(1)])
    os.rename(spool.wal.directory, tmp_path / "moved")
    for _ in range(3):  # three turns of the writer's loop
        writer._watch()
    assert not writer.spool_writable
    with pytest.raises(Busy):
        writer.add_durable("service_status", [row(2)])
    errors = [m for level, m in said(caplog) if level == "ERROR"]
    assert len(errors) == 1 and "directory was removed" in errors[0], errors
    assert not [r for r in caplog.records if r.exc_info]
    writer.stop()
