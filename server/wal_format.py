"""The write-ahead log's on-disk format (:mod:`server.wal` writes and manages it).

Segments ``<spool_dir>/wal/<n>.wal`` hold frames::

    b"LB" | kind: u8 | length: u32 | crc32(payload): u32 | payload

- ``DATA``: one record, ``id: u64 | table length: u16 | table | Arrow IPC stream``;
- ``BATCH``: records about to be inserted as one block, with the batch id that
  becomes the insert's ``insert_deduplication_token`` (JSON);
- ``DONE``: that batch is stored (JSON).

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
DATA, BATCH, DONE = 1, 2, 3
SUFFIX = ".wal"
SEGMENT_BYTES = 32 * 2**20
MIN_SEGMENT_BYTES = 64 * 2**10


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
    """
    frames, at = [], 0
    while at + HEADER.size <= len(data):
        magic, kind, length, crc = HEADER.unpack_from(data, at)
        end = at + HEADER.size + length
        if magic != MAGIC or end > len(data):
            break
        payload = data[at + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        frames.append((kind, at + HEADER.size, payload))
        at = end
    return frames, at


@dataclass
class Scan:
    """What every segment's frames say: records, batch intents, done batch ids."""

    records: dict[int, Record] = field(default_factory=dict)
    batches: dict[str, tuple[str, list[int], int]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    next_id: int = 0  # above every record id any frame names

    def add(self, segment: int, frames: list[tuple[int, int, bytes]]) -> None:
        """Take in the frames of ``segment`` (segments in order)."""
        for kind, offset, payload in frames:
            if kind == DATA:
                rid, table, ipc_at = _data_header(payload)
                rows = _row_count(payload[ipc_at:])
                self.records[rid] = Record(rid, table, rows, segment, offset + ipc_at,
                                           len(payload) - ipc_at)  # fmt: skip
                self.next_id = max(self.next_id, rid + 1)
            elif kind == BATCH:
                doc = json.loads(payload)
                self.batches[doc["id"]] = (doc["table"], list(doc["records"]), segment)
                # ids named by frames that outlive their records' segment are
                # never reused: a stale DONE would write off a new record
                self.next_id = max([self.next_id, *(r + 1 for r in doc["records"])])
            elif kind == DONE:
                self.done.add(json.loads(payload)["id"])


def _data_header(payload: bytes) -> tuple[int, str, int]:
    rid, name_length = struct.unpack_from("<QH", payload)
    start = struct.calcsize("<QH")
    return rid, payload[start : start + name_length].decode(), start + name_length


def _row_count(ipc: bytes) -> int:
    reader = pa.ipc.open_stream(pa.py_buffer(ipc))
    return sum(batch.num_rows for batch in reader)
