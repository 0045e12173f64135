"""The write-ahead log's open files: which they are, whether their names still hold them,
and putting one back that was moved underneath.

The log writes its current segment, and may still fsync one rotated away and not yet
closed (:class:`Retiring`); while that rotation is unfinished the current one is
``next.spare``, without its number. When someone removes a name, or puts another file
there, what is appended goes into an inode no name leads to and a ``kill -9`` loses it,
acknowledged records too (atk16). Such a file (:class:`Moved`) is copied where it
belongs (:meth:`OpenFiles._put_back`) before anything more is acknowledged: a numbered
one back under its name, the spare into its number. This holds the log's file state;
:class:`server.wal_segments.SegmentFiles` (starting, rotating, deleting) builds on it.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from server.wal_format import SUFFIX
from server.wal_rescue import Identity, copy_out, identity, moved
from server.wal_spare import SPARE, Spares

log = logging.getLogger("lightbulb.wal")
HEALING = "healing.tmp"  # a file's frames copied out (OpenFiles._copy_out), before renaming


class Moved(Exception):
    """A file the log writes is no longer under its name (removed or replaced
    underneath): ``segment``'s numbered file, or the spare written as ``segment`` and not
    yet numbered. :meth:`OpenFiles._put_back` copies it where it belongs."""

    def __init__(self, segment: int) -> None:
        super().__init__(segment)
        self.segment = segment


@dataclass(eq=False)
class Retiring:
    """A full segment still open: to be fsynced before the spare after it is numbered."""

    fd: int
    segment: int  # the spare, written meanwhile, becomes segment + 1
    frames: int  # frames appended to the log up to its last one (OpenFiles._appended)
    synced: bool = False
    done: bool = False  # fsynced, the spare numbered, the descriptor closed


class OpenFiles:
    """A log directory's file state: segments and their sizes, the open descriptors, and
    the identities closed segments had when they closed. The underscore methods expect
    ``self._lock`` held; the ones that change or fsync a descriptor take
    ``self._fd_lock`` (always after ``self._lock``)."""

    def __init__(self, directory: Path, readonly: bool) -> None:
        self.directory = directory
        self.readonly = readonly  # for `lightbulb spool list` beside a running daemon
        self._lock = threading.Lock()  # appends, rotation, bookkeeping
        self._fd_lock = threading.Lock()  # changing or fsyncing the file; taken after _lock
        self._sizes: dict[int, int] = {}  # segment -> bytes
        self._segment = -1
        self._fd = -1
        self._spares: Spares | None = None  # files made ahead (not for a read-only log)
        self._retiring: Retiring | None = None  # the segment before the (unnumbered) current
        self._closed_through = -1  # segments up to this one are fsynced and closed
        self._appended = 0  # frames appended, ever (counted by server.wal)
        self._synced = 0  # frames known to be on disk
        self._closed = False
        self._ids: dict[int, Identity] = {}  # closed segment -> identity (wal_rescue)
        # files put back so far (a descriptor replaced and the old one closed): a sync that
        # read a descriptor before one must read it again (under ``self._fd_lock``)
        self._put_backs = 0

    def _put_back(self, segment: int) -> None:
        """:class:`Moved`'s file copied where it belongs: the spare of an unfinished
        rotation into its number (:meth:`_heal`, which finishes the rotation), an open
        numbered one back under its name (:meth:`_rescue`). Nothing if the log deleted or
        closed it since, or another look put it back meanwhile (the watch, between a
        sync's finding and this). Holds ``self._lock`` and ``self._fd_lock``. Raises
        OSError (no room for the copy: the caller acknowledges nothing)."""
        retiring = self._retiring
        if not self._numbered(segment):
            assert retiring is not None  # only an unfinished rotation's spare has no number
            self._heal(retiring)
            return
        for fd, open_segment in self._open_files():
            if open_segment == segment and self._moved(fd, segment):
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
        self._put_backs += 1
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
        ``fd`` was closed since. Holds ``self._lock`` and ``self._fd_lock``. Raises
        OSError (no room for the copy: the caller acknowledges nothing and a later sync
        tries again)."""
        retiring = self._retiring
        if fd == self._fd and segment == self._segment:
            self._fd = self._copy_out(fd, self._path(segment))
        elif retiring is not None and not retiring.done and (fd, segment) == (
            retiring.fd, retiring.segment,
        ):  # fmt: skip
            retiring.fd = self._copy_out(fd, self._path(segment))
        else:
            return
        self._put_backs += 1
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

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SUFFIX}"

    def _read_path(self, segment: int) -> Path:
        """Where ``segment`` can be read now: the spare while it is not yet numbered."""
        return self._path(segment) if self._numbered(segment) else self.directory / SPARE
