"""Damage anywhere but the newest segment's end: set aside, counted, never silent.

A real log with one frame a segment (so every frame is the last of its segment,
and a segment can be cut, emptied or deleted on its own): records waiting,
records stored through a batch (``BATCH``, insert into the embedded engine,
``DONE``), more waiting; a crash; one kind of damage; a restart of the real
writer. Counts: every record outside the damage stored exactly once, the
damaged one (if any) not at all, the damage counted, one ERROR naming it, and a
second start that finds nothing more.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from server.schema import Target, apply_schema, declared_types
from server.storage.arrow import schema_of, to_arrow
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.wal import Record, Wal
from server.wal_format import DATA, HEADER, frame, read_frames
from server.wal_repair import PAGE
from tests.conftest import run_cli
from tests.test_daemon import write_config
from tests.test_wal_damage import ROWS, numbers, open_writer, push, row

WAITING_BEFORE, STORED, WAITING_AFTER = range(0, 5), range(5, 15), range(15, 20)
REQUESTS = 20


def segment_files(spool: Path) -> list[Path]:
    return sorted((spool / "wal").glob("*.wal"))


def build(store: EmbeddedStorage, spool: Path) -> dict[str, Path]:
    """The log as a crash leaves it; returns each frame's segment file by name
    (``W3``: the record of request 3, ``BATCH``, ``DONE``)."""
    apply_schema(store, Target("monitor"))
    cols = WRITTEN_TABLES["service_status"]
    types = declared_types()["service_status"]
    schema = schema_of(cols, [types[c] for c in cols])
    wal = Wal(spool / "wal", 10**9, segment_bytes=1)  # one frame a segment
    wal.recover()
    names: list[str] = []

    def append(request: int) -> None:
        rows = [row(request * ROWS + i) for i in range(ROWS)]
        records.append(wal.append("service_status", to_arrow(schema, rows)))
        names.append(f"W{request}")

    records: list[Record] = []
    for request in [*WAITING_BEFORE, *STORED]:
        append(request)
    stored = records[len(WAITING_BEFORE) :]
    wal.mark_batch("b1", "service_status", stored)  # as the inserter does: mark, insert, done
    names.append("BATCH")
    for record in stored:
        store.insert_arrow("service_status", wal.load(record), dedup_token=f"b1-{record.id}")
    wal.mark_done("b1", stored)
    names.append("DONE")
    for request in WAITING_AFTER:
        append(request)
    wal.sync()
    os.close(wal._fd)  # kill -9: nothing closed
    files = segment_files(spool)
    assert len(files) == len(names)  # the waiting records keep every segment
    return dict(zip(names, files, strict=True))


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def cut(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def garbage_length(path: Path) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 3, 0xFFFF_FFF0)
    path.write_bytes(bytes(data))


def undecodable(path: Path) -> None:
    path.write_bytes(frame(DATA, b"\x07" * 200))  # its checksum holds, its payload is nonsense


W3 = set(range(3 * ROWS, 4 * ROWS))
DAMAGE: dict[str, tuple[str, Callable[[Path], None], set[int]]] = {
    # name: (frame, damage, rows lost with it)
    "a waiting record's frame, flipped": ("W3", lambda p: flip(p, 100), W3),
    "a stored record's frame, flipped": ("W7", lambda p: flip(p, 100), set()),
    "the batch's mark, flipped": ("BATCH", lambda p: flip(p, HEADER.size + 2), set()),
    "the batch's done mark, flipped": ("DONE", lambda p: flip(p, HEADER.size + 2), set()),
    "a stored record's frame, cut short": ("W7", lambda p: cut(p, 200), set()),
    "a waiting record's frame, cut short": ("W3", lambda p: cut(p, 200), W3),
    "a waiting record's frame, its header alone left": ("W3", lambda p: cut(p, HEADER.size), W3),
    "a frame whose length is garbage": ("W3", garbage_length, W3),
    "a frame whose checksum holds but cannot be read": ("W3", undecodable, W3),
    "the done mark's segment, emptied": ("DONE", lambda p: cut(p, 0), set()),
    "a waiting record's segment, emptied": ("W3", lambda p: cut(p, 0), W3),
    "a waiting record's segment, deleted": ("W3", Path.unlink, W3),
    "the batch's segment, deleted": ("BATCH", Path.unlink, set()),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damage_in_a_segment_that_is_not_the_newest_is_set_aside_counted_and_said(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    spool = tmp_path / "spool"
    where, damage, lost = DAMAGE[case]
    files = build(store, spool)
    damage(files[where])
    left = files[where].stat().st_size if files[where].exists() else 0

    with caplog.at_level(logging.ERROR, logger="lightbulb.wal"):
        writer = open_writer(store, spool)
    wal = writer.spool.wal
    assert wal.damage_found == 1
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(said) == 1, said
    if left:  # bytes there to set aside (the segment's only frame): counted, copied, named
        assert files[where].name in said[0] and "damaged bytes" in said[0], said
        assert wal.damaged_bytes == left
        assert [p.stat().st_size for p in (spool / "quarantine").iterdir()] == [left]
    else:  # a whole segment gone: named by number, nothing to copy
        number = int(files[where].stem)
        assert f"segment {number} " in said[0] and "later one exists" in said[0], said
        assert wal.damaged_bytes == 0 and not (spool / "quarantine").exists()
    os.close(wal._fd)  # a crash before anything is inserted

    again = open_writer(store, spool)  # repaired once: the next start finds nothing
    assert (again.spool.wal.damage_found, again.spool.wal.damaged_bytes) == (0, 0)
    again.flush()
    everything = [n for n in range(REQUESTS * ROWS) if n not in lost]
    assert numbers(store) == everything  # nothing lost beyond the damage, nothing twice
    again.stop()
    assert not segment_files(spool)  # all stored: the log gave its room back


def test_an_unfinished_first_frame_of_the_newest_segment_leaves_nothing_to_report_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write cut short in a fresh segment is no damage, now or at any later start."""
    wal = Wal(tmp_path / "wal", 10**9, segment_bytes=1)  # one frame a segment
    wal.recover()
    for n in range(3):
        wal.append("t", pa.table({"n": [n] * 2048}))  # a frame over a page: it can be torn
    wal.sync()
    os.close(wal._fd)  # kill -9 ...
    cut(sorted((tmp_path / "wal").glob("*.wal"))[-1], PAGE)  # ... after its first page
    with caplog.at_level(logging.WARNING, logger="lightbulb.wal"):
        for _ in range(3):  # each start crashes before its first write
            wal = Wal(tmp_path / "wal", 10**9, segment_bytes=1)
            pending, uncertain = wal.recover()
            assert (len(pending), uncertain, wal.damage_found) == (2, [], 0)
            os.close(wal._fd)
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # the unfinished write, once


def test_two_damaged_places_and_a_bad_end_in_one_older_segment_are_three_places(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    apply_schema(store, Target("monitor"))
    spool = tmp_path / "spool"
    writer = open_writer(store, spool)
    for request in range(REQUESTS):
        push(writer, request)
    os.close(writer.spool.wal._fd)  # kill -9
    open_writer(store, spool).spool.wal.close()  # a start: the segment is an older one now
    wal = Wal(spool / "wal", 0, readonly=True)
    records = {r.id: r for r in wal.recover()[0]}
    assert len(records) == REQUESTS and len(segment_files(spool)) == 2
    segment = segment_files(spool)[0]
    data = bytearray(segment.read_bytes())
    for n in (3, 10, 19):  # 19: the segment's last frame
        data[records[n].offset + records[n].length // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    config = write_config(tmp_path, "  []\n")
    listed = run_cli("-m", "server.cli", "spool", "list", "--config", str(config))
    assert "damaged: 3 places" in listed.stdout, listed.stdout + listed.stderr

    with caplog.at_level(logging.ERROR, logger="lightbulb.wal"):
        writer = open_writer(store, spool)
    writer.flush()
    lost = {n * ROWS + i for n in (3, 10, 19) for i in range(ROWS)}
    assert numbers(store) == [n for n in range(REQUESTS * ROWS) if n not in lost]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(said) == 3 and all(segment.name in m for m in said), said
    assert writer.spool.wal.damage_found == 3
    copies = sorted(p.stat().st_size for p in (spool / "quarantine").iterdir())
    assert len(copies) == 3 and sum(copies) == writer.spool.wal.damaged_bytes
    writer.stop()


@pytest.mark.parametrize("how", ["flipped", "torn", "cut off a page boundary"])
def test_the_newest_segments_last_frame_is_damage_unless_cut_short_at_a_page_boundary(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    apply_schema(store, Target("monitor"))
    spool = tmp_path / "spool"
    writer = open_writer(store, spool)
    for request in range(5):
        push(writer, request)
    os.close(writer.spool.wal._fd)  # kill -9
    segment = segment_files(spool)[-1]
    size = segment.stat().st_size
    last = read_frames(segment.read_bytes())[0][-1][1] - HEADER.size  # the last frame's start
    boundary = (last // PAGE + 1) * PAGE  # where the kernel could have stopped copying it
    assert boundary < size, "the last frame must span a page boundary to be torn"
    if how == "flipped":  # a bit gone bad on disk: a write cut short never leaves a whole frame
        flip(segment, size - 10)
        end = size
    elif how == "torn":  # kill -9 mid-write: the file ends at a page boundary in the frame
        cut(segment, boundary)
    else:  # a length gone bad, a file cut by hand: short, and off a page boundary
        end = size - 10 if (size - 10) % PAGE else size - 11
        cut(segment, end)
    with caplog.at_level(logging.WARNING, logger="lightbulb.wal"):
        writer = open_writer(store, spool)
    writer.flush()
    assert numbers(store) == list(range(4 * ROWS))  # the last request's frame is gone
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(said) == 1, said
    if how == "torn":
        assert said[0][0] == "WARNING" and "unfinished write" in said[0][1]
        assert (writer.spool.wal.damage_found, writer.spool.wal.damaged_bytes) == (0, 0)
    else:
        why = "a whole frame" if how == "flipped" else "off a page boundary"
        assert said[0][0] == "ERROR" and why in said[0][1]
        assert writer.spool.wal.damage_found == 1
        assert writer.spool.wal.damaged_bytes == end - last
        assert [p.stat().st_size for p in (spool / "quarantine").iterdir()] == [end - last]
    writer.stop()
