"""What recovery does with a segment's bad bytes: cut a torn tail, set damage aside.

Two kinds of bad bytes, told apart by what follows them (:func:`read_segment`):

- a **torn tail** (nothing valid after it): a write cut short by ``kill -9`` or a
  full disk, never acknowledged; it is truncated away (a warning);
- **damage** (valid frames after it: a flipped bit, a bad sector): acknowledged
  records may be in it. Its bytes are copied to ``<spool_dir>/quarantine/`` and
  overwritten in place by a ``SKIP`` header (no new room needed, and the next
  start does not count them again); every valid frame after them is kept. An
  ERROR names the file, offset and size; the bytes are counted on ``/metrics``.
  A mark (``BATCH``/``DONE``) may have been in them, so the records the log
  holds are checked against the storage before they are inserted again
  (:attr:`server.wal.Wal.uncertain`).
"""

from __future__ import annotations

import logging
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from server.wal_format import HEADER, MAGIC, SKIP, OpenBatch, Record, read_segment

log = logging.getLogger("lightbulb.wal")
QUARANTINE = "quarantine"


@dataclass
class Repaired:
    """A segment read back: its valid frames, its size after repair, the damaged bytes."""

    frames: list[tuple[int, int, bytes]]
    size: int
    damaged_bytes: int


def read_and_repair(path: Path, *, readonly: bool) -> Repaired:
    """Read ``path``'s frames; unless ``readonly``, cut its torn tail and set damage aside.

    Raises OSError if the segment cannot be read. A quarantine copy that cannot
    be written (a full disk) leaves the damage in place, to be set aside at the
    next start; its frames after it are kept either way.
    """
    data = path.read_bytes()
    found = read_segment(data)
    damaged = sum(stop - start for start, stop in found.damaged)
    if readonly:
        return Repaired(found.frames, found.end, damaged)
    for start, stop in found.damaged:
        _set_aside(path, data, start, stop)
    if found.end < len(data):
        log.warning("%s: dropped %d bytes of an unfinished write", path, len(data) - found.end)
        with open(path, "r+b") as handle:
            handle.truncate(found.end)
    return Repaired(found.frames, found.end, damaged)


def _set_aside(path: Path, data: bytes, start: int, stop: int) -> None:
    where = path.parent.parent / QUARANTINE / f"{path.stem}-{start}.bad"
    try:
        where.parent.mkdir(exist_ok=True)
        with open(where, "wb") as out:
            out.write(data[start:stop])
            out.flush()
            os.fsync(out.fileno())
        if stop - start >= HEADER.size:  # a SKIP frame over them: nothing to re-read
            rest = data[start + HEADER.size : stop]
            header = HEADER.pack(MAGIC, SKIP, len(rest), zlib.crc32(rest))
            with open(path, "r+b") as handle:
                handle.seek(start)
                handle.write(header)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        log.error("%s: %d damaged bytes at offset %d (a checksum failed, valid frames follow); "
                  "could not set them aside (%s); the frames after them are kept",
                  path, stop - start, start, exc)  # fmt: skip
        return
    log.error("%s: %d damaged bytes at offset %d (a checksum failed, valid frames follow) set "
              "aside in %s; the frames after them are kept, and waiting rows are checked "
              "against ClickHouse before they are inserted",
              path, stop - start, start, where)  # fmt: skip


def uncertain_batches(records: list[Record], most_rows: int) -> list[OpenBatch]:
    """Records that may be stored already, as batches of at most ``most_rows`` rows (one
    record at least) that the inserter checks against the storage (``replayed``)."""
    current: dict[str, tuple[OpenBatch, int]] = {}
    out: list[OpenBatch] = []
    for record in records:
        batch, rows = current.get(record.table, (None, 0))
        if batch is None or rows + record.rows > most_rows:
            batch, rows = OpenBatch(uuid.uuid4().hex, record.table, replayed=True,
                                    uncertain=True), 0  # fmt: skip
            out.append(batch)
        batch.records.append(record)
        current[record.table] = (batch, rows + record.rows)
    return out


def flag(path: Path) -> bool:
    """Create the empty file ``path`` durably (its directory entry fsync'd); False if not."""
    if path.exists():
        return True
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        log.debug("cannot create %s: %s", path, exc)
        return False
    return True
