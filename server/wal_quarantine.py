"""``<spool_dir>/quarantine/``: copies of the log's damaged bytes, kept for a human, bounded.

Each copy is one file ``<UTC time>-<sequence>-<segment>-<offset>.bad``, created
exclusively: segment numbers start again at 0 after a clean stop, so segment
and offset alone repeat, and a copy must never overwrite an earlier one. The
directory holds at most ``cap_bytes``: past it the oldest files are removed
first, each removal logged and counted (:attr:`Quarantine.removed_files`), so
damage found again and again cannot fill the spool's filesystem. ``lightbulb
spool list`` shows the files and ``lightbulb spool drop`` removes them.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from server.core.files import own_directory, sync_directory

log = logging.getLogger("lightbulb.wal")
QUARANTINE = "quarantine"
SUFFIX = ".bad"


@dataclass(frozen=True)
class Quarantined:
    """One quarantined copy: its file, size in bytes and modification time (epoch seconds)."""

    path: Path
    size: int
    at: float


class Quarantine:
    """The quarantine directory ``directory`` of at most ``cap_bytes`` bytes.

    ``clock`` gives epoch seconds for the names (tests pin it).
    """

    def __init__(
        self, directory: Path, cap_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.clock = clock
        self.removed_files = 0  # removed to stay under cap_bytes, ever (this process)
        self._sequence = itertools.count()

    def entries(self) -> list[Quarantined]:
        """Every ``*.bad`` entry in the directory but a directory, oldest first; [] if none
        (other files there, an operator's notes say, are neither listed, counted nor
        removed). Not followed: a FIFO or link the log set aside there (found at a
        segment's name) is listed and dropped as itself (atk21: a FIFO was neither)."""
        found: list[Quarantined] = []
        if not self.directory.is_dir():
            return found
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                stat = path.lstat()
            except OSError:  # removed meanwhile
                continue
            if not S_ISDIR(stat.st_mode):  # a link's or FIFO's size is no bytes of the log
                size = stat.st_size if S_ISREG(stat.st_mode) else 0
                found.append(Quarantined(path, size, stat.st_mtime))
        return sorted(found, key=lambda q: (q.at, q.path.name))

    def keep(self, segment: str, offset: int, data: bytes) -> tuple[Path, int]:
        """Write ``data`` (damaged bytes found at ``offset`` of ``segment``) to a new file.

        Returns the file and the bytes kept: all of them, or the first ``cap_bytes``
        if more. fsync'd, its directory entry too. Raises OSError (a full disk) and
        then leaves no file behind.
        """
        self._home()
        kept = data[: self.cap_bytes]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        while True:
            path = self._name(segment, offset)
            try:
                fd = os.open(path, flags, 0o600)
                break
            except FileExistsError:  # another process's copy in the same millisecond
                continue
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(kept)
                out.flush()
                os.fsync(out.fileno())
            sync_directory(self.directory)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        self._prune(path)
        return path, len(kept)

    def take(self, path: Path) -> Path:
        """Move the whole segment file ``path`` in (one that cannot be read), named as a
        copy of its bytes from offset 0; returns its new path. Both directories are
        fsync'd. Raises OSError if it cannot be moved (it stays where it was)."""
        self._home()
        while True:
            target = self._name(path.stem, 0)
            if not os.path.lexists(target):  # a rename would replace it
                break
        os.rename(path, target)
        sync_directory(self.directory)
        sync_directory(path.parent)
        self._prune(target)
        return target

    def _home(self) -> None:
        """The directory, made if missing, and a real one (:func:`own_directory`).
        Raises OSError (no room; something else in its place)."""
        own_directory(self.directory)

    def _name(self, segment: str, offset: int) -> Path:
        """A new name: ``<UTC time>-<sequence>-<segment>-<offset>.bad``."""
        now = self.clock()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        return self.directory / f"{stamp}-{next(self._sequence):04d}-{segment}-{offset}{SUFFIX}"

    def drop(self, entry: Quarantined) -> None:
        """Remove one quarantined file (gone already: nothing to do)."""
        entry.path.unlink(missing_ok=True)

    def _prune(self, newest: Path) -> None:
        """Remove the oldest files until the directory holds at most ``cap_bytes``."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        for entry in entries:
            if total <= self.cap_bytes:
                return
            if entry.path == newest:
                continue
            self.drop(entry)
            total -= entry.size
            self.removed_files += 1
            log.warning("removed %s (%d bytes) from the spool's quarantine: it holds at most "
                        "%d bytes (a quarter of scheduler.spool_max_bytes), oldest first",
                        entry.path, entry.size, self.cap_bytes)  # fmt: skip
