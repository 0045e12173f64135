"""Spool files turned into what the log cannot write or delete: a push is refused, never a 500.

A fresh attacker (atk21) made the current segment's name a directory, or the segment
immutable (``chattr +i``), while clients pushed: each time one push got a 500 with a
traceback (an IsADirectoryError from deleting a stored segment, an EPERM from cleaning
up a failed append), the insert loop logged a traceback 6-8 times a second, and a stop
crashed. Every failure of the spool's files must be a 503 (``Busy``), said once, and
every acknowledged row stored once the files are the log's again.

A real writer, spool and embedded engine; the files are changed as a user would.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.wal_spare import SPARE
from server.writer import Busy, Writer
from tests.conftest import wait_until
from tests.test_wal_damage import ROWS, numbers, open_writer, push, row


def current(spool: Path) -> Path:
    return sorted((spool / "wal").glob("*.wal"))[-1]


def pushes(writer: Writer, first: int, count: int) -> tuple[list[int], int]:
    """Pushes ``first`` .. ``first + count - 1``: those answered (acknowledged), and how
    many were refused with a 503. Anything else raised fails the test."""
    answered, refused = [], 0
    for request in range(first, first + count):
        try:
            push(writer, request)
        except Busy as exc:
            assert exc.status == 503, exc
            refused += 1
        else:
            answered.append(request)
    return answered, refused


def rows_of(requests: list[int]) -> list[int]:
    return sorted(r * ROWS + i for r in requests for i in range(ROWS))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_directories_at_segments_names_refuse_pushes_and_lose_nothing(
    monitor_store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At a closed segment's name (found when its rows are stored and it is deleted) and
    at the current one's (it cannot be put back under its name): pushes refused, the
    directories left as they are, nothing lost or stored twice."""
    spool = tmp_path / "spool"
    writer = Writer(
        monitor_store, Spool(spool, 512 * 2**10), columns=WRITTEN_TABLES
    )  # 64 KiB segments
    acknowledged, _ = pushes(writer, 0, 60)
    closed = sorted((spool / "wal").glob("*.wal"))
    assert len(closed) >= 3  # rotated: closed segments, then the current one
    for name in (closed[0], closed[-1]):
        os.unlink(name)
        name.mkdir()  # someone's directory where the log's file was
        (name / "theirs").write_text("x")
    more, refused = pushes(writer, 60, 30)
    assert refused >= 2  # the current file cannot be put back under its name
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # each refused push's rows written off: that it could not be fsynced said once
    assert sum("could not fsync the intent" in w for w in warned) == 1, warned
    writer.flush()  # inserts, and deletes what is stored: never a directory
    assert all((name / "theirs").read_text() == "x" for name in (closed[0], closed[-1]))
    (closed[-1] / "theirs").unlink()
    closed[-1].rmdir()
    later, refused_after = pushes(writer, 90, 5)
    assert refused_after == 0 and len(later) == 5
    writer.stop()
    stored = numbers(monitor_store)
    assert stored == sorted(set(stored))  # nothing twice
    assert set(rows_of(acknowledged + more + later)) <= set(stored)
    assert any("could not be deleted" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root")
def test_an_immutable_current_segment_refuses_pushes_with_503_and_stops_cleanly(
    monitor_store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    writer = open_writer(monitor_store, spool)
    acknowledged, _ = pushes(writer, 0, 5)
    name = current(spool)
    if subprocess.run(["chattr", "+i", str(name)], check=False).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        more, refused = pushes(writer, 5, 10)
        assert refused == 10 and more == []  # an append to an immutable file: EPERM
        writer.flush()
    finally:
        subprocess.run(["chattr", "-i", str(name)], check=True)
    later, refused_after = pushes(writer, 15, 5)
    assert refused_after == 0
    writer.stop()
    stored = numbers(monitor_store)
    assert stored == sorted(set(stored)) and set(rows_of(acknowledged + later)) <= set(stored)
    said = [e for e in errors(caplog) if "cannot write the spool" in e]
    assert len(said) == 1, errors(caplog)  # once for the episode, not once a push
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("could not write off" in w or "the intent" in w for w in warned) <= 1, warned


def test_the_writer_s_own_syncs_say_a_file_it_cannot_put_back_once(
    monitor_store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer's loop syncs the log every ``flush_interval``: a file it cannot put back
    (a directory at its name) was a traceback at each (``committing rows to the spool
    failed``), then at the stop. Now the spool's failure, said once, counted each time."""
    spool = tmp_path / "spool"
    writer = Writer(monitor_store, Spool(spool, 10**9), columns=WRITTEN_TABLES, flush_interval=0.05)
    writer.start()
    acknowledged, _ = pushes(writer, 0, 3)
    name = current(spool)
    os.unlink(name)
    name.mkdir()
    failures = writer.spool_state.failures
    writer.add("service_status", row(10_000))  # buffered: the loop's sync meets the directory
    assert wait_until(lambda: writer.spool_state.failures >= failures + 3, 20)
    writer.stop()
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    said = [e for e in errors(caplog) if "cannot write the spool" in e]
    assert len(said) == 1, errors(caplog)
    name.rmdir()
    assert set(rows_of(acknowledged)) <= set(numbers(monitor_store))


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root")
def test_a_segment_left_immutable_at_the_stop_is_not_stored_twice_at_the_next_start(
    monitor_store: EmbeddedStorage, tmp_path: Path
) -> None:
    """Pushes acknowledged, then the segment and the spare made immutable: the stop inserts
    the records without marks (none can be written) and cannot delete the segment. The
    flag saying records may be stored unmarked went all the same, so the next start
    stored every one of them again (atk22: every id twice)."""
    spool = tmp_path / "spool"
    writer = open_writer(monitor_store, spool)
    acknowledged, _ = pushes(writer, 0, 5)
    names = [current(spool), spool / "wal" / SPARE]
    names = [n for n in names if n.exists()]
    if subprocess.run(["chattr", "+i", *map(str, names)], check=False).returncode:
        pytest.skip("this filesystem has no immutable flag")
    try:
        writer.stop()  # stored, unmarked; the segment stays
        assert numbers(monitor_store) == rows_of(acknowledged)
    finally:
        subprocess.run(["chattr", "-i", *map(str, names)], check=True)
    again = open_writer(monitor_store, spool)  # the next start, the files the log's again
    again.flush()
    again.stop()
    assert numbers(monitor_store) == rows_of(acknowledged)  # each once
