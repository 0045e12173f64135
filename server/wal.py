"""The write-ahead log: every row the writer takes is on disk before it is inserted.

Segments ``<spool_dir>/wal/<n>.wal`` hold ``DATA`` frames (records), ``BATCH``
frames (records about to be inserted as one block under a token) and ``DONE``
frames (that batch is stored); the format is in :mod:`server.wal_format`.

On start, records without a ``DONE`` are inserted again; a batch that has a
``BATCH`` but no ``DONE`` is inserted again *as the same block with the same
token*, so a crash between "inserted" and "marked done" stores it once. A torn
frame at the end (kill -9 mid-write) is cut off; its record was never
acknowledged. Damaged bytes with valid frames after them are set aside and the
frames after them kept (:mod:`server.wal_repair`). A segment is deleted once
every record and batch in it is done.

``DATA`` appends leave ``RESERVE_BYTES`` of the filesystem free, so the marks
that let an insert free room can always be written. When they cannot (the disk
was filled by someone else), the inserter goes on without them after leaving
the ``unmarked`` flag file (an empty file: no data blocks); while it exists,
recovery hands every waiting record back as uncertain, to be checked against
the storage rather than inserted blindly (:attr:`Wal.uncertain`).

``sync()`` is a group commit: callers that appended meanwhile share one
``fsync`` (the call releases the GIL, so other requests keep appending).
A write that fails (``ENOSPC``) is truncated away, so no half frame and no
temporary file is left; the caller gets :class:`WalFull`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
from pathlib import Path

import pyarrow as pa

from server.storage.arrow import from_ipc, to_ipc
from server.wal_format import (
    BATCH,
    DATA,
    DONE,
    HEADER,
    MIN_SEGMENT_BYTES,
    RESERVE_BYTES,
    SEGMENT_BYTES,
    SUFFIX,
    OpenBatch,
    Record,
    Scan,
    WalFull,
    data_payload,
    frame,
    segment_size,
)
from server.wal_repair import flag, read_and_repair, uncertain_batches
from server.wal_spare import Spare

__all__ = ["MIN_SEGMENT_BYTES", "SEGMENT_BYTES", "OpenBatch", "Record", "Wal", "WalFull",
           "segment_size"]  # fmt: skip

log = logging.getLogger("lightbulb.wal")
UNMARKED = "unmarked"  # flag file: records may be stored without a mark saying so
UNCERTAIN_ROWS = 100_000  # rows per batch of uncertain records handed back by recovery


class Wal:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        segment_bytes: int | None = None,
        *,
        readonly: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.readonly = readonly  # for `lightbulb spool list` beside a running daemon
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or segment_size(self.directory, max_bytes)
        self._lock = threading.Lock()  # appends, rotation, bookkeeping
        self._fd_lock = threading.Lock()  # changing or fsyncing the file; taken after _lock
        self._sync = threading.Condition()
        self._syncing = False
        self._appended = 0  # frames appended, ever
        self._synced = 0  # frames known to be on disk
        self.syncs = 0  # fsyncs done by sync(): fewer than its callers, by group commit
        self._sizes: dict[int, int] = {}  # segment -> bytes
        self._outstanding: dict[int, int] = {}  # segment -> records + batches not done
        self._batch_segment: dict[str, int] = {}
        self._next_id = 0
        self._segment = -1
        self._fd = -1
        self._retired: list[int] = []  # earlier segments' fds, frames not yet fsynced
        self._spare = Spare(self._create, self._path)  # the next segment, made ahead
        self._closed = False
        self.freed = 0  # bytes of deleted segments, ever: the writer's "room again" signal
        self.damaged_bytes = 0  # set aside by recovery as damaged (server.wal_repair)

    # -- opening ---------------------------------------------------------------------------
    def recover(self) -> tuple[list[Record], list[OpenBatch]]:
        """Read what a previous run left: records not yet stored, batches not yet done.

        Records come back without data (read lazily with :meth:`load`). Must be
        called once, before the first append.
        """
        records, batches, done = self._scan()
        for batch_id in done:
            _, ids, _ = batches.pop(batch_id, ("", [], 0))
            for rid in ids:
                records.pop(rid, None)
        open_batches = []
        for batch_id, (table, ids, segment) in batches.items():
            members = [records.pop(rid) for rid in ids if rid in records]
            if members:
                open_batches.append(OpenBatch(batch_id, table, members, replayed=True))
                self._batch_segment[batch_id] = segment
                self._outstanding[segment] = self._outstanding.get(segment, 0) + 1
        pending = sorted(records.values(), key=lambda r: r.id)
        if self.damaged_bytes and not self.readonly:
            self.flag_unmarked()  # a mark may have been in the damage: until all is stored
        if pending and self.uncertain:
            open_batches.extend(uncertain_batches(pending, UNCERTAIN_ROWS))
            pending = []
        elif not open_batches and not self.readonly:  # nothing waits: nothing is uncertain
            (self.directory / UNMARKED).unlink(missing_ok=True)
        for record in [*pending, *(r for b in open_batches for r in b.records)]:
            assert record.segment is not None
            self._outstanding[record.segment] = self._outstanding.get(record.segment, 0) + 1
        if self.readonly:
            return pending, open_batches
        self._open_segment((max(self._sizes) + 1) if self._sizes else 0)
        self._reclaim()
        return pending, open_batches

    def _scan(
        self,
    ) -> tuple[dict[int, Record], dict[str, tuple[str, list[int], int]], set[str]]:
        """Every frame of every segment: records, batch intents, done batch ids."""
        scan = Scan(next_id=self._next_id)
        for segment in self._segments():
            scan.add(segment, self._frames(segment))
        self._next_id = scan.next_id
        return scan.records, scan.batches, scan.done

    def _segments(self) -> list[int]:
        found: list[int] = []
        if not self.directory.is_dir():
            return found
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                found.append(int(path.stem))
            except ValueError:
                continue
        return sorted(found)

    def _frames(self, segment: int) -> list[tuple[int, int, bytes]]:
        read = read_and_repair(self._path(segment), readonly=self.readonly)
        self._sizes[segment] = read.size
        self.damaged_bytes += read.damaged_bytes
        return read.frames

    # -- uncertain records ---------------------------------------------------------------
    @property
    def uncertain(self) -> bool:
        """Records may be stored although no mark says so (the ``unmarked`` flag exists)."""
        return (self.directory / UNMARKED).exists()

    def flag_unmarked(self) -> bool:
        """Say on disk that records may be stored without a mark; False if it cannot.

        An empty file needs no data blocks, so this works on a full disk where a
        ``BATCH`` frame does not. Removed when the log is found or left with
        nothing waiting (at a start, or a stop with everything stored): records
        inserted unmarked can sit in a segment still in use until then.
        """
        return flag(self.directory / UNMARKED)

    # -- appending -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes in the log's segments."""
        return sum(self._sizes.values())

    def has_room(self, nbytes: int = MIN_SEGMENT_BYTES) -> bool:
        """The filesystem has ``nbytes`` free beyond the marks' reserve (``statvfs``;
        True if unknown)."""
        try:
            stat = os.statvfs(self.directory)
        except OSError:
            return True
        return stat.f_bavail * stat.f_frsize >= nbytes + RESERVE_BYTES

    def append(
        self, table: str, data: pa.Table, *, memory_only: bool = False, ipc: bytes | None = None
    ) -> Record:
        """Append one record (not yet synced: call :meth:`sync` before acknowledging it).

        ``ipc``: ``data`` as an Arrow IPC stream already (written as it is).

        Raises :class:`WalFull` when the disk is full or the log holds ``max_bytes``
        even after deleting what is done.
        With ``memory_only`` nothing is written: the record lives in memory only.
        """
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            if memory_only:
                return Record(rid, table, data.num_rows, None, data=data)
            ipc = to_ipc(data) if ipc is None else ipc
            payload = data_payload(rid, table, ipc)
            if self.size + len(payload) + HEADER.size > self.max_bytes:
                self._make_room()
            if self.size + len(payload) + HEADER.size > self.max_bytes:
                raise WalFull(
                    errno.ENOSPC,
                    f"the spool holds {self.size} bytes, scheduler.spool_max_bytes is "
                    f"{self.max_bytes}",
                )
            if not self.has_room(len(payload) + HEADER.size) and not (
                self._make_room() and self.has_room(len(payload) + HEADER.size)
            ):
                kept = f"its last {RESERVE_BYTES // 1024} KiB are kept for marking what is stored"
                raise WalFull(errno.ENOSPC, f"No space left on the spool's disk ({kept})")
            try:
                offset = self._write(DATA, payload)
            except WalFull as exc:
                if exc.errno != errno.ENOSPC or not self._make_room():
                    raise
                offset = self._write(DATA, payload)  # done segments deleted: try once more
            segment = self._segment
            self._outstanding[segment] = self._outstanding.get(segment, 0) + 1
            ipc_at = offset + len(payload) - len(ipc)
            return Record(rid, table, data.num_rows, segment, ipc_at, len(ipc), data)

    def mark_batch(self, batch_id: str, table: str, records: list[Record]) -> None:
        """Write the intent to insert ``records`` as one block with token ``batch_id``."""
        on_disk = [r.id for r in records if r.segment is not None]
        if not on_disk:
            return
        payload = json.dumps({"id": batch_id, "table": table, "records": on_disk}).encode()
        with self._lock:
            self._write(BATCH, payload)
            self._batch_segment[batch_id] = self._segment
            self._outstanding[self._segment] = self._outstanding.get(self._segment, 0) + 1
        # On disk before the insert: a batch stored but its intent lost would be
        # inserted again under a new token after a power cut (one shared fsync).
        try:
            self.sync()
        except OSError as exc:  # written (a kill -9 keeps it); only a power cut could not
            log.warning("could not fsync the intent of batch %s: %s", batch_id, exc)

    def mark_done(self, batch_id: str, records: list[Record]) -> None:
        """The batch is stored: write ``DONE`` and delete segments with nothing left.

        A ``DONE`` that cannot be written (disk full) is harmless: on restart the
        batch is inserted again with its token and the server drops it.
        """
        unlink: list[tuple[Path, int]] = []
        with self._lock:
            if batch_id in self._batch_segment:
                with contextlib.suppress(WalFull):
                    self._write(DONE, json.dumps({"id": batch_id}).encode())
            touched = [r.segment for r in records if r.segment is not None]
            batch_segment = self._batch_segment.pop(batch_id, None)
            if batch_segment is not None:
                touched.append(batch_segment)
            for segment in touched:
                self._outstanding[segment] = self._outstanding.get(segment, 1) - 1
            self._reclaim(unlink)
        # Unlinking a 32 MiB segment took ~12 ms (more with the disk busy), and every
        # push's append waits on the lock: the files go once it is released. Nothing
        # reads a done segment; one left by a crash here is deleted at the next start.
        for path, size in unlink:
            path.unlink(missing_ok=True)
            with self._lock:
                self.freed += size

    def sync(self) -> None:
        """Return once everything appended before this call is on disk (group commit).

        Raises OSError if ``fsync`` fails (the caller must not acknowledge).
        """
        with self._lock:
            target = self._appended
        with self._sync:
            while self._synced < target:
                if not self._syncing:
                    self._syncing = True
                    break
                self._sync.wait()
            else:
                return
        synced = False
        retired: list[int] = []
        try:
            # No lock held while the disk works: appends and rotations go on. Every
            # frame counted in _appended is in the current file or a retired one (a
            # rotation retires a file, it does not close it: only we and close() do,
            # and close() waits for us), so the fsyncs below cover ``upto``.
            with self._fd_lock:
                if self._closed:
                    raise WalFull(errno.EBADF, "the spool is closed (shutting down)")
                upto, fd = self._appended, self._fd
                retired, self._retired = self._retired, []
            try:
                for old in retired:
                    os.fsync(old)
                os.fsync(fd)
            except OSError:
                with self._fd_lock:
                    self._retired[:0], retired = retired, []  # the next sync tries again
                raise
            self.syncs += 1
            synced = True
        finally:
            for old in retired:
                os.close(old)
            with self._sync:
                self._syncing = False
                if synced:
                    self._synced = max(self._synced, upto)
                self._sync.notify_all()

    def load(self, record: Record) -> pa.Table:
        """The record's rows, read back from its segment if they are not in memory."""
        if record.data is not None:
            return record.data
        assert record.segment is not None
        with open(self._path(record.segment), "rb") as handle:
            handle.seek(record.offset)
            return from_ipc(handle.read(record.length))

    def close(self) -> None:
        """Sync and close; with every record stored, the log's files are deleted too."""
        with self._lock, self._fd_lock:
            self._closed = True  # no sync starts now; one under way ends first
        with self._sync:
            while self._syncing:
                self._sync.wait()
        with self._lock, self._fd_lock:
            self._spare.close(self._segment)
            retired, self._retired = self._retired, []
            try:
                for fd in [*retired, self._fd]:
                    if fd >= 0:
                        os.fsync(fd)
            finally:
                for fd in [*retired, self._fd]:
                    if fd >= 0:
                        os.close(fd)
                self._fd = -1
            if not any(self._outstanding.values()):  # all stored: nothing to keep
                for segment in sorted(self._sizes):
                    self._delete(segment)
                (self.directory / UNMARKED).unlink(missing_ok=True)

    # -- internals (hold self._lock) -----------------------------------------------------------
    def _write(self, kind: int, payload: bytes) -> int:
        """Append one frame to the current segment; returns its payload's offset."""
        if self._closed:
            raise WalFull(errno.EBADF, "the spool is closed (shutting down)")
        if self._sizes.get(self._segment, 0) >= self.segment_bytes:
            self._rotate()
        whole = frame(kind, payload)
        start = self._sizes[self._segment]
        try:
            view = memoryview(whole)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            os.ftruncate(self._fd, start)  # no half frame left behind
            raise WalFull(
                exc.errno or errno.EIO, f"cannot write the spool: {exc.strerror}"
            ) from None
        self._sizes[self._segment] = start + len(whole)
        self._appended += 1
        if self._sizes[self._segment] >= self.segment_bytes // 2:
            self._spare.ask(self._segment + 1)
        return start + HEADER.size

    def _rotate(self) -> None:
        """Go on in the next segment: the spare made ahead, or one created now.

        No disk wait under the lock every append takes (a rotation's fsyncs took
        6-96 ms there, every push waiting; benchmarks/ingest.py --trace): the old
        file's frames not yet synced are fsynced by the next :meth:`sync`, which
        every caller waits on before acknowledging them.
        """
        with self._fd_lock:
            old_fd, old = self._fd, self._segment
            fd = self._spare.take(old + 1)
            if fd is None:
                try:
                    fd = self._create(old + 1)
                except OSError as exc:  # no room for a new file: keep writing the old one
                    message = f"cannot start a file: {exc.strerror}"
                    raise WalFull(exc.errno or errno.EIO, message) from exc
            self._retired.append(old_fd)
            self._use(fd, old + 1)
        self._reclaim()

    def _reclaim(self, unlink: list[tuple[Path, int]] | None = None) -> bool:
        """Delete done segments, oldest first, stopping at the first one still needed.

        Never out of order: a later segment's ``BATCH``/``DONE`` frames may name
        records of an older live one. Returns True if a segment was deleted.
        ``unlink``: the files (and their sizes) are added to it for the caller to
        remove after releasing the lock, and count in :attr:`freed` then; the log
        forgets them at once.
        """
        deleted = False
        for segment in sorted(self._sizes):
            if segment == self._segment or self._outstanding.get(segment, 0) > 0:
                break
            self._delete(segment, unlink)
            deleted = True
        return deleted

    def _make_room(self) -> bool:
        """At the cap or the disk's end: rotate away a current segment, then reclaim.

        Rotating lets the current segment be deleted as soon as its records are
        done (at once if they are). Returns True if a segment was deleted.
        """
        before = self.freed
        if self._sizes.get(self._segment, 0) > 0:
            with contextlib.suppress(WalFull):
                self._rotate()
        self._close_retired()  # a deleted file frees its blocks only once closed
        self._reclaim()
        return self.freed > before

    def _close_retired(self) -> None:
        """fsync and close the rotated-away files now, not at the next :meth:`sync`.

        Takes the group commit's turn meanwhile, so no sync is using them. Raises
        OSError if an fsync fails (the files stay, for the next sync to retry).
        """
        with self._sync:
            while self._syncing:
                self._sync.wait()
            self._syncing = True
        try:
            with self._fd_lock:
                retired, self._retired = self._retired, []
            try:
                for fd in retired:
                    os.fsync(fd)
            except OSError:
                with self._fd_lock:
                    self._retired[:0] = retired
                raise
            for fd in retired:
                os.close(fd)
        finally:
            with self._sync:
                self._syncing = False
                self._sync.notify_all()

    def _open_segment(self, segment: int) -> None:
        self._use(self._create(segment), segment)

    def _create(self, segment: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self._path(segment), flags, 0o600)
        # the new file's directory entry must survive a crash too
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return fd

    def _use(self, fd: int, segment: int) -> None:
        self._fd, self._segment = fd, segment
        self._sizes[segment] = os.fstat(fd).st_size

    def _delete(self, segment: int, unlink: list[tuple[Path, int]] | None = None) -> None:
        size = self._sizes.pop(segment, 0)
        self._outstanding.pop(segment, None)
        if unlink is not None:
            unlink.append((self._path(segment), size))  # freed once it is gone
            return
        self._path(segment).unlink(missing_ok=True)
        self.freed += size

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SUFFIX}"
