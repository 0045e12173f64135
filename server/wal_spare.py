"""Files the write-ahead log creates ahead, so a full filesystem cannot stop its marks.

A log that cannot start its next segment, or raise its ``unmarked`` flag,
cannot say what is being inserted, and inserts stall until something frees
room: on a filesystem out of inodes (not bytes), nothing would. So both files
exist before they are needed: ``next.spare`` (held open: no descriptor needed
either, for a process out of them) becomes the next segment, and
``unmarked.spare`` the flag, each by a rename (no inode, no data block). They
are made again as soon as there is room (:meth:`Spares.prepare`, called after
each rotation and each deletion of a segment).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from server.wal_repair import flag

SPARE = "next.spare"  # the next segment's file, created ahead (held open)
FLAG_SPARE = "unmarked.spare"  # the unmarked flag, created ahead
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class Spares:
    """The log directory's files made ahead, and a held descriptor on the directory.

    Not thread-safe: the log calls it under its own lock.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd = -1  # SPARE, open
        self._dir_fd = -1  # the directory, open: its fsync after a rename needs no descriptor
        with contextlib.suppress(OSError):
            self._dir_fd = os.open(directory, os.O_RDONLY)

    @property
    def ready(self) -> bool:
        """The next segment's file exists and is open."""
        return self._fd >= 0

    def prepare(self) -> None:
        """Create what is missing, if there is room (never raises: retried later)."""
        if self._fd < 0:
            with contextlib.suppress(OSError):
                self._fd = os.open(self.directory / SPARE, OPEN_FLAGS, 0o600)
                self.sync_dir()
        flag(self.directory / FLAG_SPARE)

    def open_segment(self, path: Path) -> int:
        """An open descriptor on the new segment ``path``: the spare renamed, or a new
        file. Raises OSError when there is neither (no inode, no descriptor)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.rename(self.directory / SPARE, path)
            except OSError:  # the spare went missing: a new file, then
                os.close(fd)
            else:
                if os.fstat(fd).st_size:  # not expected: a spare is never written to
                    os.ftruncate(fd, 0)
                self.sync_dir()
                return fd
        fd = os.open(path, OPEN_FLAGS, 0o600)
        try:
            self.sync_dir()
        except OSError:
            os.close(fd)
            raise
        return fd

    def raise_flag(self, path: Path) -> bool:
        """Create the empty file ``path`` durably, from the spare if one is ready; False
        if it cannot be had at all."""
        if path.exists():
            return True
        try:
            os.rename(self.directory / FLAG_SPARE, path)
            self.sync_dir()
        except OSError:
            return flag(path)
        flag(self.directory / FLAG_SPARE)  # ready for the next time, if there is room
        return True

    def sync_dir(self) -> None:
        """fsync the directory: a new or renamed entry survives a crash too."""
        if self._dir_fd >= 0:
            os.fsync(self._dir_fd)
            return
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Close the descriptors; the files stay, ready for the next start."""
        for fd in (self._fd, self._dir_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._dir_fd = -1
