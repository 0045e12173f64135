"""The write-ahead log's segment files: which one is written, starting, rotating, deleting.

A log is the numbered files ``<directory>/<n>.wal``; one of them, the newest, is
open for appending. This module owns that set of files and nothing of what is in
them (frames, records, batches: :mod:`server.wal`, :mod:`server.wal_format`):

- **Starting** (:meth:`SegmentFiles._open_first`): a new segment after the newest
  found; on a full disk the newest found goes on, or none for now and each write
  tries to create it again (:meth:`SegmentFiles._reopen`, :attr:`writable`).
- **Rotating** (:meth:`SegmentFiles._rotate`): the current segment's frames are
  fsynced *before* the next numbered segment exists, so only the newest segment
  can end in a torn write (:mod:`server.wal_repair` relies on it). Appends do not
  wait for that fsync: they go on into ``next.spare`` (made ahead,
  :mod:`server.wal_spare`, so a filesystem out of inodes still rotates), and the
  next group commit (:meth:`server.wal.Wal.sync`) fsyncs the old segment, renames
  the spare to its number and fsyncs the directory before it fsyncs the new
  frames (:meth:`SegmentFiles._retire`); nothing in the spare is acknowledged
  before it has its number. With no next file to be had, the segment grows.
- **Deleting** (:meth:`SegmentFiles._reclaim`): segments with nothing outstanding,
  oldest first, never past one still needed.
- **Putting back** (:meth:`SegmentFiles._put_back`): an open file no longer under its
  name (:class:`Moved`) is copied where it belongs before anything more is
  acknowledged; the periodic look for that, and at closed segments, is
  :mod:`server.wal_watch`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from server.wal_format import MIN_SEGMENT_BYTES, RESERVE_BYTES, SUFFIX, WalFull, segment_size
from server.wal_rescue import Identity, copy_out, identity, moved
from server.wal_spare import OPEN_FLAGS, SPARE, Preparer, Spares

log = logging.getLogger("lightbulb.wal")
HEALING = "healing.tmp"  # a file's frames copied out (SegmentFiles._copy_out), before renaming


class Moved(Exception):
    """A file the log writes is no longer under its name (removed or replaced
    underneath): ``segment``'s numbered file, or the spare written as ``segment`` and not
    yet numbered. :meth:`SegmentFiles._put_back` copies it where it belongs."""

    def __init__(self, segment: int) -> None:
        super().__init__(segment)
        self.segment = segment


@dataclass(eq=False)
class Retiring:
    """A full segment still open: to be fsynced before the spare after it is numbered."""

    fd: int
    segment: int  # the spare, written meanwhile, becomes segment + 1
    frames: int  # frames appended to the log up to its last one (SegmentFiles._appended)
    synced: bool = False
    done: bool = False  # fsynced, the spare numbered, the descriptor closed


class SegmentFiles:
    """A log directory's segment files, the open current one and the files made ahead.

    ``max_bytes``: the cap on all segments together (bytes); ``segment_bytes``: the size
    past which the current segment rotates (None: :func:`segment_size`). The defaults
    are :class:`server.wal.Wal`'s, the one public way in.
    The underscore methods expect ``self._lock`` held; the ones that change or fsync
    the descriptor take ``self._fd_lock`` (always after ``self._lock``).
    """

    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int | None, readonly: bool
    ) -> None:
        self.directory = directory
        self.readonly = readonly  # for `lightbulb spool list` beside a running daemon
        self.open_error: OSError | None = None  # why the log has no segment to write (start)
        if not readonly:  # on a full disk, made at the first append that can (_reopen)
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.open_error = exc
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or segment_size(self.directory, max_bytes)
        self._lock = threading.Lock()  # appends, rotation, bookkeeping
        self._fd_lock = threading.Lock()  # changing or fsyncing the file; taken after _lock
        self._sizes: dict[int, int] = {}  # segment -> bytes
        self._outstanding: dict[int, int] = {}  # segment -> records + batches not done
        self._segment = -1
        self._fd = -1
        self._spares: Spares | None = None  # files made ahead (not for a read-only log)
        self._preparer = Preparer()  # makes the spares off the lock
        self._retiring: Retiring | None = None  # the segment before the (unnumbered) current
        self._closed_through = -1  # segments up to this one are fsynced and closed
        self._appended = 0  # frames appended, ever (counted by server.wal)
        self._synced = 0  # frames known to be on disk
        self._closed = False
        self.freed = 0  # bytes of deleted segments, ever: the writer's "room again" signal
        self._ids: dict[int, Identity] = {}  # closed segment -> identity (wal_rescue)

    @property
    def writable(self) -> bool:
        """The log has a segment to append to (False after a start on a full disk, until an
        append finds room to create one)."""
        return self._fd >= 0

    @property
    def size(self) -> int:
        """Bytes in the log's segments."""
        return sum(self._sizes.values())

    def has_room(self, nbytes: int = MIN_SEGMENT_BYTES) -> bool:
        """The filesystem has ``nbytes`` free beyond the marks' reserve, and an inode if
        the log must create a file to write at all (no segment open and no spare made:
        a start on a filesystem out of inodes). ``statvfs`` (``f_bavail``, ``f_favail``);
        True if unknown, as for a filesystem that counts no inodes (``f_files`` 0)."""
        try:
            stat = os.statvfs(self.directory)
        except OSError:
            return True
        if stat.f_bavail * stat.f_frsize < nbytes + RESERVE_BYTES:
            return False
        spares = self._spares
        needs_inode = self._fd < 0 and not (spares is not None and spares.ready)
        return not needs_inode or stat.f_files == 0 or stat.f_favail > 0

    # -- starting ------------------------------------------------------------------------------
    def _open_first(self, segment: int) -> None:
        """Start a segment; on a full disk, go on in the last one, or in none for now."""
        self._spares = Spares(self.directory)
        self._spares.prepare()
        try:
            self._use(self._spares.open_segment(self._path(segment)), segment)
        except OSError as exc:
            self.open_error = self.open_error or exc  # the directory's own failure first
            last = max(self._sizes, default=None)
            try:
                if last is None:
                    raise
                self._use(os.open(self._path(last), OPEN_FLAGS), last)
            except OSError:
                self._segment = segment  # appends try to create it (WalFull until they can)
                return
        self._spares.prepare()  # before the start returns: nothing can take its inode first

    def _reopen(self) -> None:
        """The log had no segment (a start on a full disk): start one now, or WalFull."""
        with self._fd_lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._use(self._open_file(self._segment), self._segment)
            except OSError as exc:
                message = f"cannot start a file in {self.directory}: {exc.strerror}"
                raise WalFull(exc.errno or errno.EIO, message) from exc
        self.open_error = None
        if self._spares is not None:
            self._spares.prepare()

    # -- rotating --------------------------------------------------------------------------------
    def _rotate(self) -> None:
        if self._retiring is not None:  # no sync since the last rotation: finish it here
            with self._fd_lock:
                try:
                    self._finish_rotation(self._retiring)
                except OSError as exc:  # the caller keeps writing the current file
                    message = f"cannot finish the last rotation: {exc.strerror}"
                    raise WalFull(exc.errno or errno.EIO, message) from exc
        fd = self._spares.take() if self._spares is not None else -1
        if fd >= 0:  # appends go on into the spare; a sync numbers it (_retire)
            self._retiring = Retiring(self._fd, self._segment, self._appended)
            self._use(fd, self._segment + 1)
            self._reclaim()
            return
        with self._fd_lock:  # a sync in progress finishes on the old file first
            old_fd, old = self._fd, self._segment
            # on disk before a later segment exists (and a sync need not wait on the new
            # file): only the newest can then end in a torn write (server.wal_repair)
            os.fsync(old_fd)
            try:
                fd = self._open_file(old + 1)
            except OSError as exc:  # no room for a new file: the caller keeps the old one
                message = f"cannot start a file: {exc.strerror}"
                raise WalFull(exc.errno or errno.EIO, message) from exc
            self._closing(old_fd, old)
            os.close(old_fd)
            self._closed_through = old
            self._use(fd, old + 1)
        self._reclaim()
        self._prepare_spares()

    def _retire(self, retiring: Retiring) -> None:
        """Put a rotated-away segment on disk, then number the spare written after it.

        Holds ``self._fd_lock`` (not ``self._lock``: appends go on). Raises OSError if
        the fsync or the renaming fails (a later call tries again), :class:`Moved` if the
        segment's name, or the spare's, no longer holds it.
        """
        if retiring.done:
            return
        if not retiring.synced and self._synced < retiring.frames:  # else a sync covered it
            os.fsync(retiring.fd)
            retiring.synced = True
        if self._moved(retiring.fd, retiring.segment):
            raise Moved(retiring.segment)
        assert self._spares is not None  # a spare was taken
        try:
            self._spares.promote(self._path(retiring.segment + 1))
        except OSError as exc:
            if exc.errno == errno.ESTALE:  # the spare's name no longer holds it
                raise Moved(retiring.segment + 1) from exc
            raise
        self._closing(retiring.fd, retiring.segment)
        os.close(retiring.fd)
        self._closed_through = max(self._closed_through, retiring.segment)
        retiring.done = True
        if self._retiring is retiring:  # only a rotation sets it, and only when it is None
            self._retiring = None
        self._prepare_spares()

    def _finish_rotation(self, retiring: Retiring) -> None:
        """:meth:`_retire` with both locks held (a rotation before a sync finished the last
        one, a close), a moved file put back first (:meth:`_put_back`). Raises OSError (no
        room for a copy; a file that keeps being moved: ESTALE)."""
        for _ in range(3):
            try:
                self._retire(retiring)  # returns at once once done (a heal finishes it)
                return
            except Moved as lost:
                self._put_back(lost.segment)
        raise OSError(errno.ESTALE, "the spool's segment keeps being removed underneath")

    def _put_back(self, segment: int) -> None:
        """:class:`Moved`'s file copied where it belongs: the spare of an unfinished
        rotation into its number (:meth:`_heal`, which finishes the rotation), an open
        numbered one back under its name (:meth:`_rescue`). Nothing if the log deleted or
        closed it since. Holds ``self._lock`` and ``self._fd_lock``. Raises OSError (no
        room for the copy: the caller acknowledges nothing)."""
        retiring = self._retiring
        if not self._numbered(segment):
            assert retiring is not None  # only an unfinished rotation's spare has no number
            self._heal(retiring)
            return
        for fd, open_segment in self._open_files():
            if open_segment == segment and segment in self._sizes:
                self._rescue(fd, segment)

    def _open_files(self) -> list[tuple[int, int]]:
        """(descriptor, segment) of the files the log writes or may still fsync: a segment
        rotated away and not yet closed, then the current one."""
        retiring = self._retiring
        rotated = [] if retiring is None or retiring.done else [(retiring.fd, retiring.segment)]
        return [*rotated, (self._fd, self._segment)]

    def _closing(self, fd: int, segment: int) -> None:
        """``segment``'s file, written through ``fd``, is closed now: its identity kept,
        for :meth:`watch` to compare (no later write of ours changes a closed segment)."""
        self._ids[segment] = identity(os.fstat(fd))

    def _heal(self, retiring: Retiring) -> None:
        """The spare written as segment ``retiring.segment + 1`` was removed or replaced
        underneath (:meth:`_retire` raised :class:`Moved`): copy what it holds into a new
        file, on disk, numbered, and go on appending there (:meth:`_copy_out`). Nothing in
        it was acknowledged, and ``retiring`` is on disk already. Holds ``self._lock`` and
        ``self._fd_lock``. Raises OSError (no room for the copy: retried at the next sync)."""
        path = self._path(retiring.segment + 1)
        size = os.fstat(self._fd).st_size
        fd = self._copy_out(self._fd, path)
        assert self._spares is not None  # a spare was taken
        os.close(self._fd)
        self._fd = fd
        self._closing(retiring.fd, retiring.segment)
        os.close(retiring.fd)
        self._closed_through = max(self._closed_through, retiring.segment)
        retiring.done = True
        if self._retiring is retiring:
            self._retiring = None
        self._spares.abandon()
        log.error("%s was removed or replaced while the spool wrote into it: what it held "
                  "(%d bytes, none of it acknowledged yet) was copied into %s; leave the "
                  "spool's files alone while the daemon runs", self.directory / SPARE,
                  size, path.name)  # fmt: skip

    def _moved(self, fd: int, segment: int) -> bool:
        """``segment``'s numbered name no longer holds the file ``fd`` writes (:func:`moved`:
        removed or replaced underneath), for a segment the log still keeps (one it deleted
        is gone by its own hand) and that has its number (the spare written as the next
        segment has none yet: :meth:`Spares.promote` checks it). The one check of the
        open files' names, for :meth:`watch`, :meth:`_retire` and a sync. Holds
        ``self._fd_lock``."""
        return segment in self._sizes and self._numbered(segment) and moved(fd, self._path(segment))

    def _numbered(self, segment: int) -> bool:
        """``segment``'s file is under its number (not the spare of an unfinished rotation)."""
        retiring = self._retiring
        return retiring is None or retiring.done or segment != retiring.segment + 1

    def _rescue(self, fd: int, segment: int, found_by: str = "a sync") -> None:
        """Put the file ``fd`` writes, numbered ``segment`` but removed or replaced
        underneath (:meth:`_moved`), back under its name: a copy of all it holds, on
        disk, the copy written from now on; the ERROR says which look ``found_by`` it (the
        watch finds it while the log idles, a sync only after an append). Does nothing if
        ``fd`` was closed since. Holds
        ``self._lock`` and ``self._fd_lock``. Raises OSError (no room for the copy: the
        caller acknowledges nothing and a later sync tries again)."""
        retiring = self._retiring
        if fd == self._fd and segment == self._segment:
            self._fd = self._copy_out(fd, self._path(segment))
        elif retiring is not None and not retiring.done and (fd, segment) == (
            retiring.fd, retiring.segment,
        ):  # fmt: skip
            retiring.fd = self._copy_out(fd, self._path(segment))
        else:
            return
        size = os.fstat(fd).st_size
        os.close(fd)
        log.error("%s was removed or replaced while the spool wrote into it: what it held "
                  "(%d bytes, acknowledged records among them) was copied back under its "
                  "name (found by %s); leave the spool's files alone while the daemon runs",
                  self._path(segment), size, found_by)  # fmt: skip

    def _copy_out(self, source_fd: int, path: Path) -> int:
        """:func:`copy_out` into ``path``, then the directory fsynced: a descriptor
        (``OPEN_FLAGS``) on the copy. Raises OSError (nothing at ``path`` changed)."""
        fd = copy_out(source_fd, path, self.directory / HEALING)
        if self._spares is None:
            self._spares = Spares(self.directory)
        self._spares.sync_dir()
        return fd

    def _prepare_spares(self) -> None:
        """Make the spare files on a thread of their own (:class:`Preparer`)."""
        if self._spares is not None and not self._closed:
            self._preparer.request(self._spares)

    def wait_spares(self) -> None:
        """Return once the spare files being made are made (or could not be)."""
        self._preparer.wait()

    def _open_file(self, segment: int) -> int:
        if self._spares is None:
            self._spares = Spares(self.directory)
        return self._spares.open_segment(self._path(segment))

    def _use(self, fd: int, segment: int) -> None:
        self._fd, self._segment = fd, segment
        self._sizes[segment] = os.fstat(fd).st_size

    # -- deleting --------------------------------------------------------------------------------
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
        self._reclaim()
        return self.freed > before

    def _delete(self, segment: int, unlink: list[tuple[Path, int]] | None = None) -> None:
        size = self._sizes.pop(segment, 0)
        self._outstanding.pop(segment, None)
        self._ids.pop(segment, None)
        if unlink is not None:
            unlink.append((self._path(segment), size))  # freed once it is gone
            return
        self._path(segment).unlink(missing_ok=True)
        self.freed += size

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SUFFIX}"

    def _read_path(self, segment: int) -> Path:
        """Where ``segment`` can be read now: the spare while it is not yet numbered."""
        return self._path(segment) if self._numbered(segment) else self.directory / SPARE
