"""Opening a file that must be a regular file, whatever stands in its place.

A spool segment replaced by a FIFO blocked the reader forever in ``open`` (a FIFO
opened for reading waits for a writer: the insert thread hung, atk12d F5); a
symlink to ``/dev/zero`` was read as zeros and, being of size 0 to ``stat``, taken
for an emptied segment. :func:`open_regular` opens without blocking and without
following a link, and refuses anything but a regular file with an ``OSError`` of
the file's own kind (``ELOOP`` for a link, ``EINVAL`` otherwise), never a shortage's.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NOT_REGULAR = "not a regular file (something else stands in its place)"


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path`` (the caller closes it). Raises ``OSError``:
    ``ELOOP`` for a symlink, ``EINVAL`` for a FIFO, device, socket or directory."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path) -> bytes:
    """The whole of the regular file ``path`` (:func:`open_regular`'s errors)."""
    fd = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def empty_regular(path: Path) -> bool:
    """``path`` is a regular file of 0 bytes (a link, FIFO or device is not: it is
    something else in the file's place, not an emptied file)."""
    st = os.lstat(path)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0
