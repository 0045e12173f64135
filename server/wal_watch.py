"""The log's periodic look at its own files: still its own, whatever was done to them.

Once a flush interval (the writer's loop, whether anything was appended or not),
:meth:`WatchedFiles.watch` looks at every file the log keeps. A sync puts back a
moved open file too, but only once something new is appended: an idle log lost what
it held at the next kill -9 (atk17). Open files are looked at with the log's locks
held (a moved one is copied back at once); closed ones off them, so appends never
wait on their ``lstat``. Built on :class:`server.wal_segments.SegmentFiles`, which
never calls back up here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from server.wal_format import WalFull
from server.wal_rescue import Identity, lost_closed
from server.wal_segments import SegmentFiles

log = logging.getLogger("lightbulb.wal")


class WatchedFiles(SegmentFiles):
    """:class:`SegmentFiles` with :meth:`watch`, which finds them changed underneath."""

    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int | None, readonly: bool
    ) -> None:
        super().__init__(directory, max_bytes, segment_bytes, readonly)
        self._said_gone: set[int] = set()  # closed segments found changed, said once

    def watch(self) -> bool:
        """Once a flush interval (the writer's loop, whether anything was appended or not):
        the files the log keeps are still its own. An open one removed or replaced is put
        back (:meth:`_rescue`; a sync does it too, but only once something new is
        appended: an idle log lost what it held at the next kill -9, atk17); an open one
        truncated is said (those bytes are gone) and the current one rotated away, so new
        records are read back where they are written; a closed one removed, replaced or
        truncated (:func:`lost_closed`) is said once. Closed segments are looked at off
        the lock (appends never wait on their ``lstat``), from a list taken under it.
        Returns True when records may be left in memory only: insert them now. Raises
        OSError (a copy back failed)."""
        with self._lock:
            if self._closed or self._fd < 0:
                return False
            cut = self._watch_open()
            open_now = {segment for _, segment in self._open_files()}
            closed = [(n, size, self._ids.get(n)) for n, size in self._sizes.items()
                      if n not in open_now and n not in self._said_gone]  # fmt: skip
        found = [(n, *lost_closed(self._path(n), size, known)) for n, size, known in closed]
        with self._lock:
            gone = self._said_closed(found)
        return bool(cut or gone)

    def _watch_open(self) -> bool:
        """:meth:`watch`'s look at the open files (holds ``self._lock``): a moved one put
        back (:meth:`_rescue`), then each measured. One shorter than counted is said, and
        its count becomes what the file holds: appends are ``O_APPEND``, so the next frame
        lands at the file's real end and offsets must count from there (and the cut is
        not said again); the current one is rotated away too. True if one was cut."""
        with self._fd_lock:
            for fd, segment in self._open_files():
                if self._moved(fd, segment):
                    self._rescue(fd, segment, found_by="the watch")
            sizes = [(segment, os.fstat(fd).st_size) for fd, segment in self._open_files()]
        cut = [(n, size) for n, size in sizes if n in self._sizes and size < self._sizes[n]]
        for segment, size in cut:
            log.error("%s was truncated underneath to %d bytes while the spool wrote into "
                      "it (%d counted): records in the bytes cut wait in memory only and "
                      "are inserted now (a crash before that loses them); leave the "
                      "spool's files alone while the daemon runs", self._path(segment),
                      size, self._sizes[segment])  # fmt: skip
            self._sizes[segment] = size
        if any(segment == self._segment for segment, _ in cut):
            with contextlib.suppress(WalFull):  # no next file: appends go on at its end
                self._rotate()
        return bool(cut)

    def _said_closed(self, found: list[tuple[int, str | None, Identity | None]]) -> bool:
        """What :meth:`watch` found of closed segments (segment, :func:`lost_closed`'s
        answer), said once each (holds ``self._lock``). A segment the log deleted since
        the list was taken is no longer its concern. True if one was said."""
        self._said_gone &= self._sizes.keys()  # deleted ones need no memory of being said
        said = False
        for n, why, identity_now in found:
            if n not in self._sizes or n in self._said_gone:
                continue
            if identity_now is not None:  # a closed segment no path above saw close: from now
                self._ids.setdefault(n, identity_now)
            if why:
                said = True
                self._said_gone.add(n)
                log.error("%s was %s underneath while its records wait to be inserted: "
                          "they are held in memory only and inserted now; a crash before "
                          "that loses them; leave the spool's files alone while the daemon "
                          "runs", self._path(n), why)  # fmt: skip
        return said
