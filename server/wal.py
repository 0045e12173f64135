"""The write-ahead log: every row the writer takes is on disk before it is inserted.

Segments ``<spool_dir>/wal/<n>.wal`` hold ``DATA`` frames (records), ``BATCH``
frames (records about to be inserted as one block under a token) and ``DONE``
frames (that batch is stored); the format is in :mod:`server.wal_format`.

On start, records without a ``DONE`` are inserted again; a batch that has a
``BATCH`` but no ``DONE`` is inserted again *as the same block with the same
token*, so a crash between "inserted" and "marked done" stores it once. The
newest segment's torn tail (kill -9 mid-write, never acknowledged) is cut off;
anything else bad is damage, set aside and counted (:mod:`server.wal_repair`).
A segment is deleted once every record and batch in it is done.

``DATA`` appends leave ``RESERVE_BYTES`` of the filesystem free, so the marks
that let an insert free room can always be written. When they cannot (the disk
was filled by someone else), the inserter goes on without them after leaving
the ``unmarked`` flag file (an empty file: no data blocks); while it exists,
recovery hands every waiting record back as uncertain, to be checked against
the storage rather than inserted blindly (:attr:`Wal.uncertain`).

The next segment's file and the flag are created ahead (:mod:`server.wal_spare`),
so a filesystem out of inodes cannot stop the marks either. When not even a
next file can be had, the current segment grows past its size; with no segment
at all (a start on a full disk) appends fail with :class:`WalFull` and each one
tries again, so the log recovers by itself once there is room (:attr:`Wal.writable`).
Starting, rotating and deleting segment files: :mod:`server.wal_segments`; looking at
them every flush interval: :mod:`server.wal_watch`.

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

from server.core.files import open_regular
from server.storage.arrow import from_ipc, to_ipc
from server.wal_format import (
    BATCH,
    DATA,
    DONE,
    HEADER,
    MIN_SEGMENT_BYTES,
    RESERVE_BYTES,
    SEGMENT_BYTES,
    OpenBatch,
    Record,
    WalFull,
    data_payload,
    frame,
    segment_size,
)
from server.wal_open import Moved, Retiring
from server.wal_quarantine import QUARANTINE, Quarantine
from server.wal_repair import read_log, uncertain_batches
from server.wal_rescue import found_identities
from server.wal_spare import Spares, adopt_spare
from server.wal_watch import WatchedFiles

__all__ = ["MIN_SEGMENT_BYTES", "SEGMENT_BYTES", "OpenBatch", "Record", "Wal", "WalFull",
           "segment_size"]  # fmt: skip

log = logging.getLogger("lightbulb.wal")
UNMARKED = "unmarked"  # flag file: records may be stored without a mark saying so
UNCERTAIN_ROWS = 100_000  # rows per batch of uncertain records handed back by recovery
PUT_BACK = -1  # :meth:`Wal._sync_files`: a file was put back meanwhile (segments are >= 0)


class Wal(WatchedFiles):
    """The log: records appended, batches marked and done, recovery; its segment files
    (start, rotation, deletion) are :class:`server.wal_segments.SegmentFiles`, watched by
    :class:`server.wal_watch.WatchedFiles`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        segment_bytes: int | None = None,
        *,
        readonly: bool = False,
    ) -> None:
        super().__init__(Path(directory), max_bytes, segment_bytes, readonly)
        self._sync = threading.Condition()
        self._syncing = False
        self.syncs = 0  # fsyncs done by sync(): fewer than its callers, by group commit
        self._intent_warned = False  # an intent not fsynced was said (until a sync works)
        self._batch_segment: dict[str, int] = {}
        self._next_id = 0
        self.damaged_bytes = self.damage_found = 0  # found by recovery: bytes, places
        self.quarantine = Quarantine(self.directory.parent / QUARANTINE, max_bytes // 4)

    # -- opening ---------------------------------------------------------------------------
    def recover(self) -> tuple[list[Record], list[OpenBatch]]:
        """Read what a previous run left: records not yet stored, batches not yet done.

        Records come back without data (read lazily with :meth:`load`). Must be
        called once, before the first append.
        """
        if not self.readonly:  # a crash mid-rotation: its frames kept or dropped
            adopt_spare(self.directory)
        found = read_log(self.directory, self.quarantine, readonly=self.readonly)
        self._sizes, self._next_id = found.sizes, found.scan.next_id
        self._ids = found_identities(self._sizes, self._path)
        self.damaged_bytes, self.damage_found = found.damaged_bytes, found.places
        pending, opened = found.scan.waiting()
        open_batches = [batch for batch, _ in opened]
        for batch, segment in opened:
            self._batch_segment[batch.id] = segment
            self._outstanding[segment] = self._outstanding.get(segment, 0) + 1
        if self.damage_found and not self.readonly:
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
        self._open_first((max(self._sizes) + 1) if self._sizes else 0)
        self._reclaim()
        return pending, open_batches

    # -- uncertain records ---------------------------------------------------------------
    @property
    def uncertain(self) -> bool:
        """Records may be stored although no mark says so (the ``unmarked`` flag exists)."""
        return (self.directory / UNMARKED).exists()

    def flag_unmarked(self) -> bool:
        """Say on disk that records may be stored without a mark; False if it cannot.

        An empty file needs no data blocks, and one is kept ready (``FLAG_SPARE``, renamed
        into place: no inode either), so this works on a full disk where a ``BATCH``
        frame does not. Removed when the log is found or left with
        nothing waiting (at a start, or a stop with everything stored): records
        inserted unmarked can sit in a segment still in use until then.
        """
        if self._spares is None:
            self._spares = Spares(self.directory)
        return self._spares.raise_flag(self.directory / UNMARKED)

    # -- appending -------------------------------------------------------------------------
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
            if not self._intent_warned:  # once until a sync succeeds: not once a request
                self._intent_warned = True
                log.warning("could not fsync the intent of batch %s: %s (said once until "
                            "the spool syncs again)", batch_id, exc)  # fmt: skip
        else:
            self._intent_warned = False

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
            if not self._remove(path):
                continue
            with self._lock:
                self.freed += size
        if unlink:  # an inode came free: the next file, ready
            with self._lock:
                self._prepare_spares()

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
        try:
            with self._lock:  # every frame counted in upto is in fd, retiring's or older
                upto, fd, segment, retiring, puts = (
                    self._appended,
                    self._fd,
                    self._segment,
                    self._retiring,
                    self._put_backs,
                )
            # _fd_lock, not _lock: appends go on while we wait for the disk. A file is
            # closed only under _fd_lock and after its fsync (_closed_through says which).
            for _ in range(3):
                moved = self._sync_files(fd, segment, retiring, puts)
                if moved is None:
                    break
                with self._lock, self._fd_lock:  # put back where it belongs, appends held
                    if moved != PUT_BACK:
                        self._put_back(moved)
                    # the files as they are now hold every frame up to upto: pass again
                    fd, segment, retiring = self._fd, self._segment, self._retiring
                    puts = self._put_backs
            else:
                raise OSError(errno.ESTALE, "the spool's segment keeps being removed underneath")
            with self._fd_lock:
                self.syncs += 1
            synced = True
        finally:
            with self._sync:
                self._syncing = False
                if synced:
                    self._synced = max(self._synced, upto)
                self._sync.notify_all()

    def _sync_files(self, fd: int, segment: int, retiring: Retiring | None,
                    puts: int) -> int | None:  # fmt: skip
        """One pass of :meth:`sync` over the files: finish a rotation, fsync ``fd``.
        Returns None, or the segment whose file (numbered, or the spare) is no longer
        under its name (:class:`Moved`): :meth:`_put_back` it, then pass again; or
        :data:`PUT_BACK` when a file was put back since ``fd`` was read (``puts``, the
        count then: the watch took its turn between, closing the descriptor read): pass
        again with the copy's (on disk with all it held, :meth:`_copy_out`)."""
        with self._fd_lock:
            if self._closed:
                raise WalFull(errno.EBADF, "the spool is closed (shutting down)")
            if self._put_backs != puts:
                return PUT_BACK
            if retiring is not None:  # a rotation: the old file first, then number fd's
                try:
                    self._retire(retiring)
                except Moved as lost:
                    return lost.segment
            if segment > self._closed_through:
                os.fsync(fd)
                if self._moved(fd, segment):
                    return segment
        return None

    def load(self, record: Record) -> pa.Table:
        """The record's rows, read back from its segment if they are not in memory."""
        if record.data is not None:
            return record.data
        return from_ipc(self.record_bytes(record))

    def record_bytes(self, record: Record) -> bytes:
        """A record's Arrow bytes as its segment holds them (fewer if the file ends first),
        read where the segment is now: ``next.spare`` while it is written and not yet
        numbered, its numbered file after. Only a regular file is read
        (:func:`server.core.files.open_regular`). Raises OSError, naming the file."""
        assert record.segment is not None  # a record not in memory is on disk
        try:
            fd = open_regular(self._read_path(record.segment), follow=False)
        except FileNotFoundError:  # numbered just now
            fd = open_regular(self._path(record.segment), follow=False)
        try:
            return os.pread(fd, record.length, record.offset)
        finally:
            os.close(fd)

    def segment_path(self, segment: int) -> Path:
        """The numbered file of ``segment`` (what a message about it names)."""
        return self._path(segment)

    def close(self) -> None:
        """Sync and close; with every record stored, the log's files are deleted too."""
        with self._lock, self._fd_lock:
            self._closed = True
            if self._retiring is not None:
                try:
                    self._finish_rotation(self._retiring)
                except (
                    OSError
                ) as exc:  # no room to copy the spare: its frames were never acknowledged
                    log.error("closing the spool: %s; the frames written after segment %d "
                              "were never acknowledged and are not kept", exc,
                              self._retiring.segment)  # fmt: skip
                    os.close(self._retiring.fd)
                    self._retiring = None
            if self._fd >= 0:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = -1
            if self._spares is not None:
                self._spares.close()
            if not any(self._outstanding.values()):  # all stored: nothing to keep
                left = [s for s in sorted(self._sizes) if not self._delete(s)]
                # a segment that stays (immutable, a directory at its name) may hold records
                # stored without a mark: the flag stays with it, so the next start checks
                # them against ClickHouse instead of storing them again (atk22)
                if not left:
                    (self.directory / UNMARKED).unlink(missing_ok=True)

    # -- internals (hold self._lock) -----------------------------------------------------------
    def _write(self, kind: int, payload: bytes) -> int:
        """Append one frame to the current segment; returns its payload's offset."""
        if self._closed:
            raise WalFull(errno.EBADF, "the spool is closed (shutting down)")
        if self._fd < 0:
            self._reopen()
        elif self._sizes.get(self._segment, 0) >= self.segment_bytes:
            # no next file to be had (no inode): the segment grows rather than refuse
            with contextlib.suppress(WalFull):
                self._rotate()
        whole = frame(kind, payload)
        start = self._sizes[self._segment]
        try:
            view = memoryview(whole)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)  # no half frame left behind
            except OSError:  # an immutable file (chattr +i): any half frame is skipped at
                # read (a frame's length and checksum), later frames counted where they land
                with contextlib.suppress(OSError):
                    self._sizes[self._segment] = os.fstat(self._fd).st_size
            raise WalFull(
                exc.errno or errno.EIO, f"cannot write the spool: {exc.strerror}"
            ) from None
        self._sizes[self._segment] = start + len(whole)
        self._appended += 1
        return start + HEADER.size
