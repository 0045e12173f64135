"""Rotating to a new segment under load: no disk wait under the lock every append takes,
and nothing appended to the old segment acknowledged before it is on disk.

A real log on disk with tiny segments (every append rotates); the one thing faked is
a slow ``fsync`` (the shared disk's), held on an event so the test needs no timing.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from server.wal import Wal
from tests.test_full_disk import mount_small


def table(n: int) -> pa.Table:
    return pa.table({"n": pa.array([n], pa.int64()), "pad": pa.array(["x" * 400])})


def inode(path: Path) -> int:
    return path.stat().st_ino


class Fsyncs:
    """``os.fsync`` that logs each file's inode, and can be held for one inode."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real: Callable[[int], None] = os.fsync
        self.done: list[int] = []
        self.hold: int | None = None
        self.held, self.release = threading.Event(), threading.Event()
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        ino = os.fstat(fd).st_ino
        if ino == self.hold:
            self.held.set()
            assert self.release.wait(30)
        self.real(fd)
        self.done.append(ino)


def test_an_append_that_rotates_does_not_wait_for_a_sync_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = Wal(tmp_path / "wal", 10**9, segment_bytes=300)
    wal.recover()
    fsyncs = Fsyncs(monkeypatch)
    wal.append("t", table(0))  # past the segment's size: the next append rotates
    fsyncs.hold = inode(tmp_path / "wal" / f"{0:012d}.wal")
    syncing = threading.Thread(target=wal.sync)
    syncing.start()
    try:
        assert fsyncs.held.wait(10)  # the group commit waits for the (slow) disk
        rotated = threading.Thread(target=wal.append, args=("t", table(1)))
        rotated.start()
        rotated.join(10)
        assert not rotated.is_alive(), "an append waited for a sync in progress to rotate"
        assert wal._segment == 1
    finally:
        fsyncs.release.set()
        syncing.join(30)
    wal.close()


def test_frames_left_in_a_rotated_segment_are_on_disk_before_sync_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = Wal(tmp_path / "wal", 10**9, segment_bytes=300)
    wal.recover()
    fsyncs = Fsyncs(monkeypatch)
    for n in range(3):  # each append after the first rotates; none synced yet
        wal.append("t", table(n))
    assert wal._segment == 2
    wal.sync()  # whether a rotation or the sync fsynced them, they are on disk now
    segments = [inode(tmp_path / "wal" / f"{n:012d}.wal") for n in range(3)]
    assert set(segments) <= set(fsyncs.done)
    fsyncs.done.clear()
    wal.sync()  # nothing new: each file was fsynced once, and the old ones closed
    assert not set(segments) & set(fsyncs.done)  # (a spare's directory fsync may show)
    assert wal._retired == []
    wal.close()


def test_a_full_disk_gets_room_from_a_stored_segment_rotated_away(tmp_path: Path) -> None:
    """A rotated-away file stays open until the next sync; one deleted to make room on
    a full disk must be closed at once, or its blocks stay taken (a real small tmpfs)."""
    disk = mount_small(tmp_path / "disk", "2m")
    try:
        wal = Wal(disk.path / "wal", 10**9)
        wal.recover()
        assert wal.segment_bytes == 256 * 2**10  # an eighth of the disk
        record = pa.table({"pad": pa.array(["x" * 10_000] * 10)})  # ~100 KiB
        stored = [wal.append("t", record) for _ in range(2)]
        wal.mark_batch("b", "t", stored)
        wal.mark_done("b", stored)  # done, but in the current segment: kept for now
        wal.sync()
        disk.fill()
        assert not wal.has_room(100 * 2**10)
        wal.append("t", record)  # the stored segment rotated away and deleted: room
        wal.sync()
        wal.close()
    finally:
        subprocess.run(["umount", "-l", str(disk.path)], check=False)
