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

Which files are open, and putting one back that was moved underneath, is
:mod:`server.wal_open` below this; the periodic look at them all is
:mod:`server.wal_watch` above it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

from server.core.files import remove_own
from server.wal_format import MIN_SEGMENT_BYTES, RESERVE_BYTES, WalFull, segment_size
from server.wal_open import Moved, OpenFiles, Retiring
from server.wal_spare import OPEN_FLAGS, Preparer, Spares

log = logging.getLogger("lightbulb.wal")


class SegmentFiles(OpenFiles):
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
        super().__init__(directory, readonly)
        self.open_error: OSError | None = None  # why the log has no segment to write (start)
        if not readonly:  # on a full disk, made at the first append that can (_reopen)
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.open_error = exc
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or segment_size(self.directory, max_bytes)
        self._outstanding: dict[int, int] = {}  # segment -> records + batches not done
        self._preparer = Preparer()  # makes the spares off the lock
        self.freed = 0  # bytes of deleted segments, ever: the writer's "room again" signal

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

    def _delete(self, segment: int, unlink: list[tuple[Path, int]] | None = None) -> bool:
        """Forget ``segment`` (every record in it stored) and delete its file, or hand it to
        ``unlink`` to delete off the lock. False when its file stays (:meth:`_remove`)."""
        size = self._sizes.pop(segment, 0)
        self._outstanding.pop(segment, None)
        self._ids.pop(segment, None)
        if unlink is not None:
            unlink.append((self._path(segment), size))  # freed once it is gone
            return True
        if not self._remove(self._path(segment)):
            return False
        self.freed += size
        return True

    @staticmethod
    def _remove(path: Path) -> bool:
        """Delete a stored segment's file (:func:`remove_own`); False, said, when it stays:
        a directory at its name (someone else's) or an immutable file. Never raises: a
        push or a stop must not fail over a file it no longer needs (atk21)."""
        left = remove_own(path)
        if left is None:
            return True
        log.warning("%s is stored and no longer needed, but could not be deleted (%s): "
                    "remove it by hand", path, left.strerror or left)  # fmt: skip
        return False
