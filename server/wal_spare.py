"""Files the write-ahead log creates ahead, so a full filesystem cannot stop its marks.

A log that cannot start its next segment, or raise its ``unmarked`` flag,
cannot say what is being inserted, and inserts stall until something frees
room: on a filesystem out of inodes (not bytes), nothing would. So both files
exist before they are needed: ``next.spare`` (held open: no descriptor needed
either, for a process out of them) becomes the next segment, and
``unmarked.spare`` the flag, each by a rename (no inode, no data block). They
are made again as soon as there is room (:meth:`Spares.prepare`, called after
each rotation and each deletion of a segment, off the append path).

A rotation writes into ``next.spare`` under that name (:meth:`Spares.take`) and
numbers it only once the previous segment is on disk (:meth:`Spares.promote`):
so a crash can leave a spare with frames in it, none of them acknowledged (an
acknowledgement waits for the numbering). The next start keeps them as the next
segment if the newest numbered one ends in whole frames (a ``kill -9``: nothing
was lost), and drops them otherwise, as they could only follow a torn tail
(:func:`adopt_spare`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from pathlib import Path

from server.core.files import read_regular, sync_directory
from server.wal_format import SUFFIX, read_segment
from server.wal_repair import flag, numbered_segments

log = logging.getLogger("lightbulb.wal")

SPARE = "next.spare"  # the next segment's file, created ahead (held open)
FLAG_SPARE = "unmarked.spare"  # the unmarked flag, created ahead
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class Spares:
    """The log directory's files made ahead, and a held descriptor on the directory.

    Thread-safe (its own lock): :meth:`prepare` runs on a thread of its own, so that
    creating a file and fsyncing the directory does not hold up appends.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._fd = -1  # SPARE, open
        self._taken = False  # SPARE is being written as the next segment, not yet numbered
        self._taken_id: tuple[int, int] | None = None  # its (st_dev, st_ino): promote checks
        self._closed = False
        self._dir_fd = -1  # the directory, open: its fsync after a rename needs no descriptor
        with contextlib.suppress(OSError):
            self._dir_fd = os.open(directory, os.O_RDONLY)

    @property
    def ready(self) -> bool:
        """The next segment's file exists and is open."""
        return self._fd >= 0

    def prepare(self) -> None:
        """Create what is missing, if there is room (never raises: retried later)."""
        with self._lock:
            self._prepare()

    def _prepare(self) -> None:
        if self._closed:
            return
        if self._fd < 0 and not self._taken:
            with contextlib.suppress(OSError):
                self._fd = own_file(self.directory / SPARE)
                self.sync_dir()
        flag(self.directory / FLAG_SPARE)

    def take(self) -> int:
        """The spare's descriptor, empty, to be written as the next segment while it keeps
        its spare name; -1 if there is none (nor room to make one now). Call
        :meth:`promote` to number it; until then it is not made again."""
        with self._lock:
            if not self._taken:
                self._prepare()  # not made yet (a rotation soon after the last one)
            if self._fd < 0 or self._taken:
                return -1
            fd, self._fd = self._fd, -1
            st = os.fstat(fd)
            if st.st_nlink != 1:  # linked elsewhere since it was made: not ours alone (atk18)
                os.close(fd)  # or, no link left, removed or replaced (a symlink there: atk21)
                why = ("had another name (a hard link) made to it" if st.st_nlink > 1
                       else "was removed or replaced underneath")  # fmt: skip
                with contextlib.suppress(OSError):
                    (self.directory / SPARE).unlink()
                log.warning("%s %s: not written; the log rotates without it",
                            self.directory / SPARE, why)  # fmt: skip
                return -1
            self._taken = True
            self._taken_id = (st.st_dev, st.st_ino)
            if st.st_size:  # not expected: recovery adopts or empties it
                os.ftruncate(fd, 0)
            return fd

    def promote(self, path: Path) -> None:
        """Number the taken spare: rename it to ``path``, durably (directory fsynced).

        Raises OSError: ESTALE if the file under the spare's name is no longer the one
        taken (removed or replaced underneath by someone: renaming it would number a
        file that lacks what was written, and leave those frames in an unlinked inode,
        acknowledged and lost at the next crash); then it is still taken, and a later
        call retries (the frames are never acknowledged meanwhile). Call only once the
        segment before ``path`` is on disk: a later segment's existence says so
        (:mod:`server.wal_repair`).
        """
        with self._lock:
            if _identity(path) != self._taken_id:  # not renamed by an earlier try
                if _identity(self.directory / SPARE) != self._taken_id:
                    raise OSError(errno.ESTALE, f"{self.directory / SPARE} was removed or "
                                  "replaced while written as the next segment (leave the "
                                  "log's files alone while the daemon runs)")  # fmt: skip
                os.rename(self.directory / SPARE, path)
            self.sync_dir()
            self._taken, self._taken_id = False, None

    def abandon(self) -> None:
        """The taken spare is no longer the one under its name (:meth:`promote` raised
        ESTALE) and its writer made the segment otherwise: take no more notice of it,
        and make a new spare."""
        with self._lock:
            self._taken, self._taken_id = False, None
            self._prepare()

    def open_segment(self, path: Path) -> int:
        """An open descriptor on the new segment ``path``: the spare renamed, or a new
        file. Raises OSError when there is neither (no inode, no descriptor)."""
        fd = self.take()
        if fd >= 0:
            try:
                self.promote(path)
            except OSError:  # the spare went missing: a new file, then
                os.close(fd)
                with self._lock:
                    self._taken, self._taken_id = False, None
            else:
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
        with self._lock:
            return self._raise_flag(path)

    def _raise_flag(self, path: Path) -> bool:
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
        else:
            sync_directory(self.directory)

    def close(self) -> None:
        """Close the descriptors; the files stay, ready for the next start."""
        with self._lock:
            self._closed = True
            for fd in (self._fd, self._dir_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._dir_fd = -1


class Preparer:
    """Makes a log's spare files on a thread of its own: creating a file and fsyncing the
    directory took tens of ms under load, with every append waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = self._again = False

    def request(self, spares: Spares) -> None:
        """Have what ``spares`` lacks made, off the caller's thread (nothing if ready)."""
        if spares.ready:
            return
        with self._lock:
            self._again = True  # an inode freed meanwhile: one more try after
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(
            target=self._loop, args=(spares,), name="lightbulb-wal-spare", daemon=True
        )
        self._thread.start()

    def _loop(self, spares: Spares) -> None:
        while True:
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False
            spares.prepare()

    def wait(self) -> None:
        """Return once the spare files being made are made (or could not be)."""
        thread = self._thread
        if thread is not None:
            thread.join()


def own_file(path: Path) -> int:
    """A descriptor (``OPEN_FLAGS``) on ``path`` as a file only the log holds: the regular
    file with one link already there (a spare made before), or a new one. Whatever else
    stands there (a symlink, a hard link to a segment, a FIFO) is removed first and never
    opened: opening the name followed a link and emptied a live segment through it, or a
    file outside the spool (atk16). Raises OSError (no room; a directory in its place)."""
    try:
        fd = os.open(path, OPEN_FLAGS | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except FileNotFoundError:
        return os.open(path, OPEN_FLAGS | os.O_EXCL, 0o600)
    except IsADirectoryError:
        path.rmdir()  # an empty one; OSError (ENOTEMPTY) for another's files: left alone
        return os.open(path, OPEN_FLAGS | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO):  # a link, or a FIFO with no reader
            raise
        fd = -1
    if fd >= 0:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            return fd
        os.close(fd)
    path.unlink()  # not ours to write into: gone, whatever it pointed at left as it was
    return os.open(path, OPEN_FLAGS | os.O_EXCL, 0o600)


def _identity(path: Path) -> tuple[int, int] | None:
    """``path``'s (st_dev, st_ino), None if it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def adopt_spare(directory: Path) -> None:
    """At a start: make a spare that holds frames (a crash mid-rotation) the next segment,
    or empty it.

    Its frames were written after the newest numbered segment was complete in the page
    cache, none acknowledged. If that segment ends in whole frames (always, after a
    ``kill -9``), nothing is torn before them: the spare is numbered next and its
    records kept. If the segment is empty or ends torn (a power cut before its fsync),
    or is no regular file to read, numbering the spare would make that tail look like
    damage: its frames are dropped.
    Raises OSError if the directory cannot be read or changed.
    """
    spare = directory / SPARE
    try:
        st = spare.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):  # never one of ours (own_file): not a segment either
        log.warning("%s is not a regular file (mode %o): not taken for a segment", spare,
                    stat.S_IFMT(st.st_mode))  # fmt: skip
        return
    size = st.st_size
    if not size:
        return
    numbered = numbered_segments(directory)
    newest = directory / f"{numbered[-1]:012d}{SUFFIX}" if numbered else None
    try:  # only a regular file: a FIFO in its place would block the start for good
        data = read_regular(newest) if newest is not None else b""
    except OSError:  # not one to read: whether it ends whole cannot be told
        data = b""
    if newest is None or (data and read_segment(data).end == len(data)):
        segment = numbered[-1] + 1 if numbered else 0
        os.rename(spare, directory / f"{segment:012d}{SUFFIX}")
        sync_directory(directory)
        log.info("kept %d bytes written to %s during a rotation as segment %d", size, spare,
                 segment)  # fmt: skip
        return
    os.truncate(spare, 0)
    log.warning("dropped %d bytes written to %s during a rotation, none acknowledged: "
                "the segment before ends torn (a crash before it was on disk)", size,
                spare)  # fmt: skip
