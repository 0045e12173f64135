"""The watch's look at closed segments is taken off the append lock.

It ``lstat``-ed every closed segment with the lock held, so each push's append waited
on the file system (a slow or hung disk, a spool of many segments). Now the list is
taken under the lock and looked at outside it; what was found is said under the lock
again, and a segment the log deleted meanwhile is not said at all. The slow file
system is the one thing faked: :func:`lost_closed` waits for the test.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import server.wal_watch
from server.storage.arrow import from_ipc
from server.wal_format import read_frames
from server.wal_rescue import lost_closed
from server.wal_spare import SPARE
from tests.test_wal_rotation import PAD, numbered, open_log, synced_log


def test_appends_go_on_while_the_watch_looks_at_a_closed_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "wal"
    wal = open_log(directory)
    for _ in range(5):
        wal.append("t", PAD)
    wal.sync()  # segment 0 closed, 1 current
    looking, appended = threading.Event(), threading.Event()
    meanwhile: list[bool] = []

    def slow_lstat(path: Path, counted: int, known: object) -> object:
        looking.set()
        meanwhile.append(appended.wait(5))  # the append below, done while this looks
        return lost_closed(path, counted, known)  # type: ignore[arg-type]

    monkeypatch.setattr(server.wal_watch, "lost_closed", slow_lstat)
    os.unlink(numbered(directory, 0))
    said: list[bool] = []
    watcher = threading.Thread(target=lambda: said.append(wal.watch()))
    watcher.start()
    assert looking.wait(10)
    wal.append("t", PAD)
    wal.sync()
    appended.set()
    watcher.join(10)
    assert meanwhile == [True]  # the append did not wait for the look
    assert said == [True]  # and what the look found is still said, once
    assert wal.watch() is False
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "000000000000.wal was removed underneath" in errors[0]
    wal.close()


def test_a_segment_the_log_deletes_while_the_watch_looks_is_not_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its records all stored, the log deletes the closed segment between the watch's list
    and its look: the look finds no file, and that is the log's own doing."""
    directory = tmp_path / "wal"
    wal = open_log(directory)
    records = [wal.append("t", PAD) for _ in range(5)]
    wal.sync()

    def stored_meanwhile(path: Path, counted: int, known: object) -> object:
        wal.mark_batch("b", "t", records[:4])
        wal.mark_done("b", records[:4])  # segment 0 has nothing left: deleted
        return lost_closed(path, counted, known)  # type: ignore[arg-type]

    monkeypatch.setattr(server.wal_watch, "lost_closed", stored_meanwhile)
    assert wal.watch() is False
    assert not numbered(directory, 0).exists()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    wal.close()


@pytest.mark.parametrize("gone", ["the rotated-away segment", "the spare"])
def test_a_file_moved_before_the_next_rotation_finishes_the_last_is_put_back_there(
    tmp_path: Path, gone: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotation with the last one unfinished (no sync between) finishes it first. Its
    segment's name lost underneath raised ``Moved`` out of the append itself (a push
    failed with a traceback); the spare's lost went on unsaid until a sync. Either file
    is put back there, as a sync does (one :class:`Moved` for both), and nothing is lost."""
    directory = tmp_path / "wal"
    wal = open_log(directory)
    records = [wal.append("t", PAD) for _ in range(5)]  # the fifth into the spare
    os.unlink(numbered(directory, 0) if gone == "the rotated-away segment" else directory / SPARE)
    records += [wal.append("t", PAD) for _ in range(4)]  # the spare fills: a rotation
    wal.sync()
    assert [r.segment for r in records] == [0] * 4 + [1] * 4 + [2]
    for n, count in ((0, 4), (1, 4), (2, 1)):
        assert len(read_frames(numbered(directory, n).read_bytes())[0]) == count
    assert all(from_ipc(wal.record_bytes(r)).num_rows == 1 for r in records)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "was removed or replaced while the spool wrote" in errors[0]
    wal.close()


def test_a_file_the_watch_put_back_before_a_sync_s_turn_is_not_copied_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync finds the current segment moved (with only the descriptor lock held), and the
    watch takes both locks and puts it back before the sync does: the sync's turn finds
    the name holding its file again and copies nothing (it copied it twice, said twice)."""
    directory, wal = synced_log(tmp_path, 2)
    os.unlink(numbered(directory, 0))
    assert wal._sync_files(wal._fd, 0, None, wal._put_backs) == 0  # the sync's finding: 0
    assert wal.watch() is False  # the watch's turn comes first
    with wal._lock, wal._fd_lock:
        wal._put_back(0)  # then the sync's
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "(found by the watch)" in errors[0]
    assert len(read_frames(numbered(directory, 0).read_bytes())[0]) == 2
    wal.close()


def test_a_sync_whose_descriptor_the_watch_put_back_meanwhile_syncs_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync reads the current descriptor (append lock), then waits for the descriptor
    lock; the watch takes its turn between and puts the removed file back, closing that
    descriptor. The sync must fsync the copy, not the closed descriptor (EBADF: the push
    refused with a 503, or a descriptor number reused by another file)."""
    directory, wal = synced_log(tmp_path, 2)
    wal.append("t", PAD)  # not yet on disk: the sync below has work
    syncs = wal.syncs
    original = type(wal)._sync_files
    turns: list[int] = []

    def watch_first(self: object, fd: int, *args: object) -> int | None:
        if not turns:  # the first pass only: the watch's turn comes between
            os.unlink(numbered(directory, 0))
            assert wal.watch() is False
        turns.append(fd)
        return original(wal, fd, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(type(wal), "_sync_files", watch_first)
    wal.sync()  # raised EBADF: the descriptor it read was closed by the put back
    assert len(turns) == 2 and turns[1] == wal._fd != turns[0]
    assert wal.syncs == syncs + 1 and len(read_frames(numbered(directory, 0).read_bytes())[0]) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "(found by the watch)" in errors[0]
    wal.close()
