"""The write-ahead log on its own: what recovery hands back after any crash, what it frees.

A model of the inserter drives a real log on disk (tiny segments, so that every
few frames rotate): records appended, batched, stored, batches left open, and a
crash (the file abandoned without ``close``, as ``kill -9`` leaves it) at random
points, many times over. After each crash, recovery must hand back exactly the
records not yet stored, open batches under their own ids, and never a stored
one (that would be inserted again under a new token: a duplicate).
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from server.wal import MIN_SEGMENT_BYTES, OpenBatch, Record, Wal, WalFull, segment_size


def table(n: int) -> pa.Table:
    return pa.table({"n": pa.array([n], pa.int64()), "pad": pa.array(["x" * 40])})


def crash(wal: Wal) -> None:
    """What kill -9 leaves: the file as written, nothing closed or fsync'd by us."""
    os.close(wal._fd)  # the process would simply vanish


class Model:
    """The inserter's use of the log, with the truth kept beside it."""

    def __init__(self, directory: Path, segment_bytes: int, max_bytes: int = 10**9) -> None:
        self.directory, self.segment_bytes, self.max_bytes = directory, segment_bytes, max_bytes
        self.stored: set[int] = set()  # the n of every stored record
        self.appended: set[int] = set()
        self.open_ids: set[str] = set()
        self.wal, self.pending, self.open = self.start()

    def start(self) -> tuple[Wal, list[Record], list[OpenBatch]]:
        wal = Wal(self.directory, self.max_bytes, self.segment_bytes)
        pending, open_batches = wal.recover()
        return wal, pending, open_batches

    def append(self, n: int) -> None:
        self.pending.append(self.wal.append("t", table(n)))
        self.appended.add(n)

    def batch(self, rng: random.Random) -> None:
        if self.open and rng.random() < 0.5:
            batch = self.open.pop(0)
        else:
            take = rng.randint(1, max(1, len(self.pending)))
            members, self.pending = self.pending[:take], self.pending[take:]
            if not members:
                return
            batch = OpenBatch(uuid.uuid4().hex, "t", members)
            self.wal.mark_batch(batch.id, "t", members)
        if rng.random() < 0.2:  # "inserted", then the crash came before DONE
            self.open_ids.add(batch.id)
            self.open.append(batch)
            return
        self.stored |= {self.n(r) for r in batch.records}
        self.open_ids.discard(batch.id)
        self.wal.mark_done(batch.id, batch.records)

    def crash_and_recover(self) -> None:
        crash(self.wal)
        self.wal, self.pending, self.open = self.start()
        records = [*self.pending, *(r for b in self.open for r in b.records)]
        back = [self.n(r) for r in records]
        assert len(back) == len(set(back)) == len({r.id for r in records})
        assert not set(back) & self.stored, "a stored record would be inserted again"
        assert set(back) == self.appended - self.stored, "an unstored record was lost"
        assert {b.id for b in self.open} == self.open_ids  # same token: the server dedups

    def n(self, record: Record) -> int:
        value: int = self.wal.load(record).column("n")[0].as_py()
        return value


@pytest.mark.parametrize("seed", range(4))
def test_recovery_after_any_number_of_crashes_returns_exactly_the_unstored_records(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    model = Model(tmp_path / "wal", segment_bytes=rng.choice([300, 700, 2000]))
    for step in range(600):
        roll = rng.random()
        if roll < 0.6:
            model.append(step)
        elif roll < 0.95:
            model.batch(rng)
        else:
            model.crash_and_recover()
    model.crash_and_recover()


def test_segments_are_deleted_once_everything_is_stored_and_none_before(tmp_path: Path) -> None:
    model = Model(tmp_path / "wal", segment_bytes=300)
    for n in range(40):
        model.append(n)
    first = model.pending[:1]
    rest = model.pending[1:]
    model.pending = []
    model.wal.mark_batch("b-rest", "t", rest)
    model.wal.mark_done("b-rest", rest)
    # the oldest segment holds a record not stored: nothing after it may go either
    # (their DONE frames are what says the rest is stored)
    # (an empty file after the current one is the next segment, created ahead)
    segments = sorted(p for p in (tmp_path / "wal").glob("*.wal") if p.stat().st_size)
    assert len(segments) > 5
    model.wal.mark_batch("b-first", "t", first)
    model.wal.mark_done("b-first", first)
    kept = [p.name for p in (tmp_path / "wal").glob("*.wal") if p.stat().st_size]
    assert kept == [segments[-1].name]


def test_appends_go_on_while_a_stored_segment_is_being_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # deleting a 32 MiB segment took ~12 ms under the lock every push's append takes;
    # a deletion that cannot finish (the disk is slow) is the one thing faked here
    model = Model(tmp_path / "wal", segment_bytes=300)
    for n in range(10):
        model.append(n)
    stored, model.pending = model.pending, []
    model.wal.mark_batch("b", "t", stored)
    deleting, finish = threading.Event(), threading.Event()
    unlink = Path.unlink

    def slow_unlink(path: Path, missing_ok: bool = False) -> None:
        if path.suffix == ".wal":
            deleting.set()
            assert finish.wait(30)
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", slow_unlink)
    done = threading.Thread(target=model.wal.mark_done, args=("b", stored))
    done.start()
    try:
        assert deleting.wait(10)
        appended = threading.Thread(target=lambda: (model.append(10), model.wal.sync()))
        appended.start()
        appended.join(10)
        assert not appended.is_alive(), "an append waited for a segment's deletion"
    finally:
        finish.set()
        done.join(30)
    freed = model.wal.freed
    written = [p for p in (tmp_path / "wal").glob("*.wal") if p.stat().st_size]  # not a spare
    assert freed > 0 and len(written) == 1


def test_the_log_frees_space_under_a_small_cap_as_records_are_stored(tmp_path: Path) -> None:
    """A cap smaller than one default segment: stored records must free room, forever."""
    cap = 2 * 2**20
    wal = Wal(tmp_path / "wal", cap)
    wal.recover()
    assert wal.segment_bytes <= cap // 8
    data = pa.table({"pad": pa.array(["x" * 10_000] * 10)})  # ~100 KiB a record
    for i in range(300):  # ~30 MiB through a 2 MiB log
        record = wal.append("t", data)
        wal.mark_batch(f"b{i}", "t", [record])
        wal.mark_done(f"b{i}", [record])
        assert wal.size <= cap
    on_disk = sum(p.stat().st_size for p in (tmp_path / "wal").glob("*.wal"))
    assert on_disk <= cap // 4


def test_at_the_cap_with_nothing_stored_the_log_refuses_and_keeps_what_it_has(
    tmp_path: Path,
) -> None:
    wal = Wal(tmp_path / "wal", 2**20)
    wal.recover()
    data = pa.table({"pad": pa.array(["x" * 10_000] * 10)})
    kept = []
    with pytest.raises(WalFull):
        for _ in range(100):
            kept.append(wal.append("t", data))
    assert 8 <= len(kept) < 11  # 1 MiB of ~100 KiB records
    for i, record in enumerate(kept):  # stored now: room again, without a restart
        wal.mark_batch(f"b{i}", "t", [record])
        wal.mark_done(f"b{i}", [record])
    wal.append("t", data)


def test_segments_are_a_fraction_of_the_cap_and_of_the_filesystem(tmp_path: Path) -> None:
    assert segment_size(tmp_path, 2**40) <= 32 * 2**20
    assert segment_size(tmp_path, 2**20) == 2**17
    assert segment_size(tmp_path, 1000) == MIN_SEGMENT_BYTES
