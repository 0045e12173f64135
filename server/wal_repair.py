"""What recovery does with the log's bad bytes: cut a torn tail, set damage aside.

Only the newest segment can end in a **torn tail**: a write cut short (``kill -9``,
a full disk) is in the file being written, and a segment is complete on disk
before a later one is numbered (:meth:`server.wal_segments.SegmentFiles._retire`; a
``next.spare`` written meanwhile is no segment: :func:`server.wal_spare.adopt_spare`).
A cut-short write leaves a frame short, so a tail whose first frame is whole yet fails its checksum
is no torn tail either. Nor is a file that ends off a page boundary: the kernel
copies a write into the page cache a page at a time and stops between pages (a
fatal signal, a full disk: Linux ``generic_perform_write``/``iomap_write_iter``),
and a file's size after a power cut is one such size, so a cut-short write
leaves the file at a multiple of the page size. A torn tail was never
acknowledged; it is truncated away (a warning).

Everything else is **damage** (a flipped bit, a bad sector, a file cut, emptied
or deleted by hand), and acknowledged records may have been in it:

- bad bytes with valid frames after them, in any segment;
- the bad or cut-short end of a segment that is not the newest: decided by
  whether a later segment exists (even an empty one), not by where the file ends;
- a whole frame failing its checksum at the newest segment's end;
- a short frame at the newest segment's end in a file whose size is not a multiple
  of the page size (a length field gone bad, a file cut by hand);
- a frame that passes its checksum but cannot be decoded;
- a segment that is empty while a later one exists, or missing from the
  numbering (segments are numbered one by one and only ever deleted oldest
  first, so a gap is damage).

A segment that cannot be read at all (permissions, ``EIO``, something else in
its place) is damage too: it is moved whole to the quarantine, one ERROR names it
and the fix, and the start goes on without it (a shortage, such as ``EMFILE``, is
not the file's fault: the start fails and says so).

Damaged bytes are copied to ``<spool_dir>/quarantine/``
(:mod:`server.wal_quarantine`), then covered in place by a ``SKIP`` frame, so
the next start does not count them again (nor find the segment emptied);
emptied and missing segments are closed up by renumbering the later ones down.
Each place gets one ERROR naming the segment and is counted (``places``; its
bytes in ``damaged_bytes``), and frames before and after it are kept. A mark
(``BATCH``/``DONE``) may have been in it, so the records the log holds are
checked against the storage before they are inserted again
(:attr:`server.wal.Wal.uncertain`). (A spool of a release before this one may
hold an empty older segment, left by a crash at a start: it too is reported,
once, though nothing was in it.)
"""

from __future__ import annotations

import logging
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from server.core.files import empty_regular, read_regular, sync_directory
from server.core.oserrors import fix, is_shortage, why
from server.wal_format import (
    HEADER,
    MAGIC,
    SKIP,
    SUFFIX,
    OpenBatch,
    Record,
    Scan,
    frame,
    read_segment,
)
from server.wal_quarantine import Quarantine

log = logging.getLogger("lightbulb.wal")
CHECKSUM = "a checksum failed, valid frames follow"
OLDER_END = (
    "the end of a segment that is not the newest: a later one exists, so no write was cut "
    "short here"
)
WHOLE_FRAME = (
    "a whole frame at the newest segment's end fails its checksum: a write cut short leaves "
    "a frame short, never whole and wrong"
)
OFF_PAGE = (
    "a short frame at the newest segment's end, the file ending off a page boundary: a write "
    "cut short ends the file at a page boundary"
)
PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
KEPT = (
    "the frames around them are kept, and waiting rows are checked against ClickHouse "
    "before they are inserted"
)


@dataclass
class LogRead:
    """What the log's segments hold after repair: every frame's meaning (``scan``),
    each segment's size, damaged bytes and places damage was found."""

    scan: Scan
    sizes: dict[int, int] = field(default_factory=dict)
    damaged_bytes: int = 0
    places: int = 0


class _Unreadable(Exception):
    """A segment's file cannot be read (``error``); ``partial``: what was read before it."""

    def __init__(self, path: Path, error: OSError, partial: LogRead) -> None:
        super().__init__(str(error))
        self.path, self.error, self.partial = path, error, partial


def read_log(directory: Path, quarantine: Quarantine, *, readonly: bool) -> LogRead:
    """Read every segment of ``directory`` in order; unless ``readonly``, repair as above.

    ``readonly`` (``lightbulb spool list`` beside a running daemon) changes and
    logs nothing; damage is counted all the same, and a segment that cannot be
    read is skipped. Otherwise such a segment (permissions, ``EIO``, something
    else in its place) is moved whole to the quarantine with one ERROR naming it
    and the fix, counted as a place of damage, and the log is read again without
    it: the start goes on. Raises OSError if a segment can be neither read nor
    moved, or a torn tail cannot be cut.
    """
    damaged = places = 0
    moved: int | None = None  # the segment moved away by the last pass: not reported again
    while True:
        try:
            out = _read_all(directory, quarantine, moved, readonly=readonly)
        except _Unreadable as bad:
            damaged += bad.partial.damaged_bytes  # repaired already: not found again
            places += bad.partial.places + 1
            moved = int(bad.path.stem)
            _move_aside(bad.path, bad.error, quarantine)
            continue
        out.damaged_bytes += damaged
        out.places += places
        return out


def _read_all(directory: Path, quarantine: Quarantine, moved: int | None, *,
              readonly: bool) -> LogRead:  # fmt: skip
    out = LogRead(Scan())
    segments = numbered_segments(directory)
    if not segments:
        return out
    # decided before an empty newest segment is removed: the one before it is older
    newest = None if empty_regular(directory / _name(segments[-1])) else segments[-1]
    segments = _close_gaps(directory, segments, out, moved, readonly=readonly)
    for segment in segments:
        last = newest is not None and segment == segments[-1]
        _read(directory / _name(segment), segment, last, quarantine, out, readonly=readonly)
    return out


def _move_aside(path: Path, error: OSError, quarantine: Quarantine) -> None:
    """Move an unreadable segment to the quarantine, with one ERROR; raises ``error`` if
    it cannot be moved (the start cannot go on around it)."""
    try:
        where = quarantine.take(path)
    except OSError as failed:
        log.error("%s cannot be read (%s) nor moved aside (%s): the daemon cannot start on "
                  "this spool: %s", path, why(error), why(failed), fix(error))  # fmt: skip
        raise error from failed
    log.error("%s cannot be read (%s): moved to %s so that the daemon starts; the records "
              "in it are not inserted (lightbulb spool list shows the file, lightbulb spool "
              "drop removes it); %s: %s", path, why(error), where, KEPT, fix(error))  # fmt: skip


def numbered_segments(directory: Path) -> list[int]:
    """The numbers of the log's segment files (``<n>.wal``), oldest first."""
    found: list[int] = []
    if directory.is_dir():
        for path in directory.glob(f"*{SUFFIX}"):
            if path.stem.isdigit():
                found.append(int(path.stem))
    return sorted(found)


def _name(segment: int) -> str:
    return f"{segment:012d}{SUFFIX}"


def _close_gaps(
    directory: Path, segments: list[int], out: LogRead, moved: int | None, *, readonly: bool
) -> list[int]:
    """Report segments emptied or missing below the newest; renumber to close the gaps.

    Only the newest may be empty (created, then a crash before its first frame):
    it is removed, to be created again. ``moved``: a segment moved aside (and
    reported) by this start, closed up without a report. Returns the segments to
    read, in order.
    """
    newest = segments[-1]
    emptied = [n for n in segments[:-1] if empty_regular(directory / _name(n))]
    missing = set(range(segments[0], newest)) - set(segments)
    lost = sorted({*emptied, *missing})
    for first, last in _runs(sorted({*emptied, *(missing - {moved})})):
        out.places += 1
        if readonly:
            continue
        which = f"segment {first}" if first == last else f"segments {first}-{last}"
        cut = [n for n in emptied if first <= n <= last]
        how = (f"{len(cut)} emptied, {last - first + 1 - len(cut)} missing" if cut
               else "missing")  # fmt: skip
        log.error("%s: %s of the spool's log (%s) although a later one exists: the records "
                  "and marks in them are lost; the other segments are kept, and waiting rows "
                  "are checked against ClickHouse before they are inserted",
                  directory, which, how)  # fmt: skip
    present = [n for n in segments if n not in emptied]
    if readonly:
        return present
    for n in emptied:
        (directory / _name(n)).unlink()
    if empty_regular(directory / _name(newest)):
        (directory / _name(newest)).unlink()
        present.pop()
    for target, n in enumerate(present, start=segments[0]):
        if target != n:  # below n, everything is renamed down already or lost: free
            os.rename(directory / _name(n), directory / _name(target))
    if lost or len(present) < len(segments):
        sync_directory(directory)
    return list(range(segments[0], segments[0] + len(present)))


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _read(path: Path, segment: int, newest: bool, quarantine: Quarantine, out: LogRead, *,
          readonly: bool) -> None:  # fmt: skip
    try:
        data = read_regular(path)  # a FIFO or link in its place: unreadable, moved aside
    except OSError as exc:
        if is_shortage(exc):  # the system's, not the file's: the start fails, retried
            raise
        if readonly:  # skipped, counted (the daemon beside moves it at its start)
            out.places += 1
            return
        raise _Unreadable(path, exc, out) from exc
    found = read_segment(data)
    bad = out.scan.add(segment, found.frames)
    places = [(start, stop, CHECKSUM) for start, stop in found.damaged]
    places += [(at - HEADER.size, at + length, f"a frame passes its checksum but cannot be "
                f"read: {why}") for at, length, why in bad]  # fmt: skip
    tail = len(data) - found.end  # bytes after the last valid frame
    why = OLDER_END if not newest else _newest_end(data, found.end)
    out.damaged_bytes += sum(stop - start for start, stop, _ in places)
    out.places += len(places) + (1 if tail and why else 0)
    if why:
        out.damaged_bytes += tail
    out.sizes[segment] = found.end
    if readonly:
        return
    for start, stop, why in sorted(places):
        if _set_aside(path, data, (start, stop), why, quarantine):
            _skip(path, data, start, stop)
    if tail and not why:
        log.warning("%s: dropped %d bytes of an unfinished write", path, tail)
        if not found.end:  # its first frame: an empty segment would look emptied later
            path.unlink()
            del out.sizes[segment]
            return
        _truncate(path, found.end)
    elif tail and why and _set_aside(path, data, (found.end, len(data)), why, quarantine):
        _skip(path, data, found.end, len(data))
    out.sizes[segment] = path.stat().st_size


def _newest_end(data: bytes, end: int) -> str | None:
    """Why the newest segment's bytes after ``end`` are damage, or None for a torn tail."""
    if _whole_frame(data, end):
        return WHOLE_FRAME
    return OFF_PAGE if len(data) % PAGE else None


def _whole_frame(data: bytes, at: int) -> bool:
    """All of the frame at ``at`` is there (magic, and as many bytes as its length says)."""
    if at + HEADER.size > len(data):
        return False
    magic, _, length, _ = HEADER.unpack_from(data, at)
    return bool(magic == MAGIC and at + HEADER.size + length <= len(data))


def _skip(path: Path, data: bytes, start: int, stop: int) -> None:
    """Make ``data[start:stop]`` a ``SKIP`` frame, so that the next start reads past them
    without counting them again (and never finds the segment emptied).

    Fewer bytes than a header: at the end, an empty ``SKIP`` frame replaces them (the
    file grows by a few bytes); in the middle they are left, to be found again.
    """
    if stop - start >= HEADER.size:
        rest = data[start + HEADER.size : stop]
        at, write = start, HEADER.pack(MAGIC, SKIP, len(rest), zlib.crc32(rest))
    elif stop == len(data):
        at, write = start, frame(SKIP, b"")
    else:
        return
    with open(path, "r+b") as handle:
        handle.seek(at)
        handle.write(write)
        handle.flush()
        os.fsync(handle.fileno())


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def _set_aside(
    path: Path, data: bytes, span: tuple[int, int], why: str, quarantine: Quarantine
) -> bool:
    """Copy ``data[start:stop]`` to the quarantine with an ERROR; False if it cannot be
    (the bytes stay, to be set aside at the next start)."""
    start, stop = span
    try:
        where, kept = quarantine.keep(path.stem, start, data[start:stop])
    except OSError as exc:
        log.error("%s: %d damaged bytes at offset %d (%s); could not set them aside (%s), "
                  "to be tried again at the next start; %s",
                  path, stop - start, start, why, exc, KEPT)  # fmt: skip
        return False
    more = "" if kept == stop - start else f" (their first {kept})"
    log.error("%s: %d damaged bytes at offset %d (%s) set aside in %s%s; %s",
              path, stop - start, start, why, where, more, KEPT)  # fmt: skip
    return True


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
        sync_directory(path.parent)
    except OSError as exc:
        log.debug("cannot create %s: %s", path, exc)
        return False
    return True
