"""Putting a log file back under its name when it was removed or replaced underneath.

The log holds its current segment (and one just rotated away) open; when someone
removes the name, or puts another file there, what is appended goes into an inode
no name leads to, and a ``kill -9`` loses all of it, acknowledged records too
(atk16). Such a file is found (:func:`moved`: the name's inode is not the
descriptor's) and copied back whole (:func:`copy_out`, read through
``/proc/self/fd``, which opens an unlinked file). The temporary file of the copy is
made afresh (:func:`fresh_file`): a FIFO at its name hung the copy with the log's
locks held, and a link there had the copy written outside the spool (atk17).
This module imports nothing of ours.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

#: how a copy is opened for appending afterwards (as :data:`server.wal_spare.OPEN_FLAGS`)
APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def moved(fd: int, path: Path) -> bool:
    """``path`` no longer holds the file ``fd`` writes (removed, or another file put
    there). Two system calls; ``fd`` must stay open meanwhile."""
    st = os.fstat(fd)
    try:
        there = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return True
    return (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino)


def fresh_file(path: Path) -> int:
    """A new, empty regular file at ``path`` (write-only, ``O_EXCL``: no link followed, no
    FIFO opened): whatever stands there first is removed (an empty directory too).
    Raises OSError (a directory with files in it; no room)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
        return os.open(path, flags, 0o600)


def copy_out(source_fd: int, path: Path, temporary: Path) -> int:
    """Copy all of the file ``source_fd`` writes to ``path`` by way of ``temporary`` (made
    afresh), fsynced, and return a descriptor (:data:`APPEND_FLAGS`) on the copy; the
    caller fsyncs the directory. Raises OSError (no room: nothing at ``path`` changed,
    the temporary file removed)."""
    source = os.open(f"/proc/self/fd/{source_fd}", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        copy = fresh_file(temporary)
        try:
            size = os.fstat(source).st_size
            copied = 0
            while copied < size:  # copy_file_range refuses an O_APPEND target
                copied += os.copy_file_range(source, copy, size - copied, copied, copied)
            os.fsync(copy)
            os.rename(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        finally:
            os.close(copy)
    finally:
        os.close(source)
    return os.open(path, APPEND_FLAGS)


Identity = tuple[int, int, int]  # a closed file's (st_dev, st_ino, st_mtime_ns)


def identity(st: os.stat_result) -> Identity:
    """A closed segment's :data:`Identity`: another file at its name, or the same file
    written again (``cp`` over it keeps the inode: atk19), no longer has it."""
    return st.st_dev, st.st_ino, st.st_mtime_ns


def lost_closed(
    path: Path, counted: int, known: Identity | None
) -> tuple[str | None, Identity | None]:
    """How a closed segment at ``path`` (``counted`` bytes, its identity ``known`` when it
    closed, or None) is no longer the log's: "removed", "replaced" (another file, or no
    regular file, at its name), "truncated", "written over" (its bytes written again: a
    later modification time), or None while it is whole; and the identity found there.
    One ``lstat``."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return "removed", None
    found = identity(st)
    if not stat.S_ISREG(st.st_mode) or (known is not None and known[:2] != found[:2]):
        return "replaced", found
    if st.st_size < counted:
        return "truncated", found
    return ("written over" if known is not None and known != found else None), found


def found_identities(sizes: dict[int, int], path_of: Callable[[int], Path]) -> dict[int, Identity]:
    """The identities of the segments a start found (``sizes``: segment ->
    bytes; ``path_of``: a segment's path), as they are now: closed from here on but the
    newest, which is left out when a new one is started (:meth:`watch` never compares
    the current one). Unreadable ones are left out (compared by name and size only)."""
    found: dict[int, Identity] = {}
    for segment in sizes:
        try:
            found[segment] = identity(os.stat(path_of(segment), follow_symlinks=False))
        except OSError:
            continue
    return found
