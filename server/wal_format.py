"""The write-ahead log's on-disk format (:mod:`server.wal` writes and manages it).

Segments ``<spool_dir>/wal/<n>.wal`` hold frames::

    b"LB" | kind: u8 | length: u32 | crc32(payload): u32 | payload

- ``DATA``: one record, ``id: u64 | table length: u16 | table | Arrow IPC stream``;
- ``BATCH``: records about to be inserted as one block, with the batch id that
  becomes the insert's ``insert_deduplication_token`` (JSON);
- ``DONE``: that batch is stored (JSON);
- ``SKIP``: bytes set aside as damaged (their copy is in ``quarantine/``); ignored.

This module holds the format (framing, reading a segment back, what a scan of
all segments finds) and the values the log hands out (:class:`Record`,
:class:`OpenBatch`, :class:`WalFull`); it does no writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

MAGIC = b"LB"
HEADER = struct.Struct("<2sBII")  # magic, kind, payload length, crc32
DATA, BATCH, DONE, SKIP = 1, 2, 3, 4
KINDS = frozenset((DATA, BATCH, DONE, SKIP))
KINDS_ANY = frozenset(range(256))
SUFFIX = ".wal"
SEGMENT_BYTES = 32 * 2**20
MIN_SEGMENT_BYTES = 64 * 2**10
#: free bytes a ``DATA`` append leaves on the spool's filesystem, so that marking
#: what is already in the log for insert (``BATCH``, ``DONE``) never lacks room:
#: a log that filled its own disk with records and could not mark them stalled.
RESERVE_BYTES = 16 * 2**10
#: valid frames in a row (or the segment's end) that make a resynchronisation
#: point after damaged bytes trustworthy, rather than a frame-like run of bytes
#: inside a record's payload
RESYNC_FRAMES = 3


def segment_size(directory: Path, max_bytes: int) -> int:
    """Bytes per segment: 32 MiB, or an eighth of ``max_bytes`` or of the filesystem if less.

    With a segment as large as the cap (or the disk) the log could never free a
    byte: only whole segments are deleted. Floor 64 KiB.
    """
    size = min(SEGMENT_BYTES, max_bytes // 8)
    with contextlib.suppress(OSError):
        stat = os.statvfs(directory)
        size = min(size, stat.f_frsize * stat.f_blocks // 8)
    return max(size, MIN_SEGMENT_BYTES)


class WalFull(OSError):
    """The log cannot take this write: the disk is full or ``spool_max_bytes`` is reached."""


@dataclass(eq=False)
class Record:
    """Rows of one table, appended together; ``data`` is None while only on disk."""

    id: int
    table: str
    rows: int
    segment: int | None  # None: held in memory only (the disk was full)
    offset: int = 0
    length: int = 0
    data: pa.Table | None = None


@dataclass
class OpenBatch:
    """A ``BATCH`` frame without its ``DONE``: insert exactly these records, with this token."""

    id: str
    table: str
    records: list[Record] = field(default_factory=list)
    #: left by a previous run (or an older release): whether it was stored is
    #: asked of the storage, not taken from the token (:meth:`Storage.stored_mask`)
    replayed: bool = False
    #: no mark names these records, yet they may be stored (a mark lost in damaged
    #: bytes, or inserted unmarked on a full disk): only the storage can tell
    uncertain: bool = False


def frame(kind: int, payload: bytes) -> bytes:
    """One frame: header (magic, kind, length, crc32) and payload."""
    return HEADER.pack(MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


def data_payload(record_id: int, table: str, ipc: bytes) -> bytes:
    """A ``DATA`` frame's payload; the IPC stream is its last ``len(ipc)`` bytes."""
    name = table.encode()
    return struct.pack("<QH", record_id, len(name)) + name + ipc


def read_frames(data: bytes) -> tuple[list[tuple[int, int, bytes]], int]:
    """A segment's bytes -> ([(kind, payload offset, payload)], bytes of whole frames).

    Reading stops at the first frame that is cut short or fails its checksum:
    what follows was never acknowledged (kill -9 or a full disk mid-write).
    :func:`read_segment` also finds the frames after damaged bytes.
    """
    frames, at = [], 0
    while (found := _frame_at(data, at, KINDS_ANY)) is not None:
        frames.append((found[0], found[1], found[3]))
        at = found[2]
    return frames, at


@dataclass
class SegmentRead:
    """What one segment's bytes hold: ``frames`` as :func:`read_frames` gives them,
    ``end`` (after the last valid frame: beyond it, a torn tail), and ``damaged``
    ranges ``(start, end)`` of bytes followed by valid frames (not an unfinished write)."""

    frames: list[tuple[int, int, bytes]]
    end: int
    damaged: list[tuple[int, int]]


def read_segment(data: bytes) -> SegmentRead:
    """Every valid frame of a segment, resynchronising past damaged bytes.

    A frame failing its checksum (or its header) with valid frames after it is
    damage (a flipped bit, a bad sector), not a write cut short: the reader
    scans for the next offset where ``RESYNC_FRAMES`` valid frames follow in a
    row (or valid frames up to the end) and goes on from there. Without one, the
    rest is a torn tail, as :func:`read_frames` says.
    """
    frames, at = read_frames(data)
    damaged: list[tuple[int, int]] = []
    end = at
    while at < len(data):
        resume = _resync(data, at + 1)
        if resume is None:
            break
        damaged.append((at, resume))
        more, stop = read_frames(data[resume:])
        frames.extend((kind, offset + resume, payload) for kind, offset, payload in more)
        at = end = resume + stop
    return SegmentRead(frames, end, damaged)


def _frame_at(
    data: bytes, at: int, kinds: frozenset[int] = KINDS
) -> tuple[int, int, int, bytes] | None:
    """(kind, payload offset, end, payload) of a valid frame at ``at``, else None.

    ``kinds``: the kinds taken; reading in order takes any (a later release's), a
    resynchronisation only ours (fewer frame-like runs of bytes pass)."""
    if at + HEADER.size > len(data):
        return None
    magic, kind, length, crc = HEADER.unpack_from(data, at)
    end = at + HEADER.size + length
    if magic != MAGIC or kind not in kinds or end > len(data):
        return None
    payload = data[at + HEADER.size : end]
    if zlib.crc32(payload) != crc:
        return None
    return kind, at + HEADER.size, end, payload


def _resync(data: bytes, start: int) -> int | None:
    """The first offset from ``start`` where trustworthy frames begin, or None."""
    at = data.find(MAGIC, start)
    while at >= 0:
        probe, run = at, 0
        while run < RESYNC_FRAMES and (found := _frame_at(data, probe)) is not None:
            probe, run = found[2], run + 1
        if run and (run >= RESYNC_FRAMES or probe == len(data)):
            return at
        at = data.find(MAGIC, at + 1)
    return None


@dataclass
class Scan:
    """What every segment's frames say: records, batch intents, done batch ids."""

    records: dict[int, Record] = field(default_factory=dict)
    batches: dict[str, tuple[str, list[int], int]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    next_id: int = 0  # above every record id any frame names

    def add(self, segment: int, frames: list[tuple[int, int, bytes]]) -> list[tuple[int, int, str]]:
        """Take in the frames of ``segment`` (segments in order).

        Returns the frames that pass their checksum yet cannot be decoded (written
        by a bug, or damage the checksum missed) as ``(payload offset, payload
        length, why)``; they are left out, never raised: one bad frame must not stop
        a start.
        """
        bad = []
        for kind, offset, payload in frames:
            try:
                self._take(segment, kind, offset, payload)
            except (ValueError, KeyError, TypeError, struct.error, pa.ArrowException) as exc:
                bad.append((offset, len(payload), f"{type(exc).__name__}: {exc}"))
        return bad

    def waiting(self) -> tuple[list[Record], list[tuple[OpenBatch, int]]]:
        """What is not stored: records no batch took (by id), and batches without their
        ``DONE`` that still name records, each with the segment of its ``BATCH``."""
        records, batches = dict(self.records), dict(self.batches)
        for batch_id in self.done:
            _, ids, _ = batches.pop(batch_id, ("", [], 0))
            for rid in ids:
                records.pop(rid, None)
        opened = []
        for batch_id, (table, ids, segment) in batches.items():
            members = [records.pop(rid) for rid in ids if rid in records]
            if members:
                opened.append((OpenBatch(batch_id, table, members, replayed=True), segment))
        return sorted(records.values(), key=lambda r: r.id), opened

    def _take(self, segment: int, kind: int, offset: int, payload: bytes) -> None:
        """Decode one frame, then record it (nothing recorded if it raises)."""
        if kind == DATA:
            rid, table, ipc_at = _data_header(payload)
            rows = _row_count(payload[ipc_at:])
            self.records[rid] = Record(rid, table, rows, segment, offset + ipc_at,
                                       len(payload) - ipc_at)  # fmt: skip
            self.next_id = max(self.next_id, rid + 1)
        elif kind == BATCH:
            doc = json.loads(payload)
            ids = [int(r) for r in doc["records"]]
            self.batches[str(doc["id"])] = (str(doc["table"]), ids, segment)
            # ids named by frames that outlive their records' segment are
            # never reused: a stale DONE would write off a new record
            self.next_id = max([self.next_id, *(r + 1 for r in ids)])
        elif kind == DONE:
            self.done.add(str(json.loads(payload)["id"]))


def _data_header(payload: bytes) -> tuple[int, str, int]:
    rid, name_length = struct.unpack_from("<QH", payload)
    start = struct.calcsize("<QH")
    return rid, payload[start : start + name_length].decode(), start + name_length


def _row_count(ipc: bytes) -> int:
    reader = pa.ipc.open_stream(pa.py_buffer(ipc))
    return sum(batch.num_rows for batch in reader)
