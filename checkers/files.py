"""Read local files the way a monitor must: never blocking on open, never without a limit.

Every file a checker reads (a pidfile, a log file, a ``/proc`` entry, any path
from the config) goes through here:

- it is opened with ``O_NONBLOCK`` (so a FIFO with no writer does not block the
  open) and ``O_NOCTTY``, and refused unless it is a regular file: a pidfile
  that is a FIFO or ``/dev/zero`` is a configuration fault, not data
  (:class:`NotRegularFile`, worded "pidfile … is not a regular file (a FIFO)");
- it is read with a byte cap (:func:`read_capped`): a 500 MB line or an endless
  device never reaches memory.

A read of a regular file on a hung network mount can still block; that is the
engine's to bound (one thread per hung service, see :mod:`server.scheduler`).
"""

from __future__ import annotations

import errno
import os
import stat

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class NotRegularFile(OSError):
    """The path exists but is a FIFO, device, socket or directory; ``kind`` says which."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is not a regular file ({kind})")
        self.path = path
        self.kind = kind


def kind_of(mode: int) -> str:
    """``"a FIFO"``, ``"a character device"`` … for a stat mode; ``"a regular file"``."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "an unknown file type"


def open_regular(path: str) -> int:
    """A file descriptor on ``path`` (close it), opened without blocking.

    Raises :class:`NotRegularFile` for anything but a regular file (``/proc``
    entries are regular files), :class:`OSError` when it cannot be opened.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:  # a socket cannot be opened (ENXIO): say what it is
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV):
            mode = os.stat(path).st_mode
            if not stat.S_ISREG(mode):
                raise NotRegularFile(path, kind_of(mode)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, kind_of(mode))
    return fd


def read_capped(path: str, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the regular file ``path``, and whether there was more.

    Memory used is ``limit`` + 1 bytes whatever the file holds. Raises as
    :func:`open_regular`.
    """
    fd = open_regular(path)
    try:
        chunks: list[bytes] = []
        wanted = limit + 1
        while wanted > 0:
            chunk = os.read(fd, wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def read_whole(
    path: str, limit: int, what: str, refuse: type[Exception] = OSError, too_large: str = ""
) -> bytes:
    """All of the small regular file ``path`` (a pidfile, a CA file), at most ``limit`` bytes.

    ``what`` names the file in the errors, worded for the user: ``refuse`` (an
    exception class taking a message) is raised with ``"<what> <path> is not a
    regular file (a FIFO)"`` or ``"<what> <path> is larger than <limit> bytes"``
    followed by ``too_large``. OSError when it cannot be opened (missing, denied).
    """
    try:
        data, more = read_capped(path, limit)
    except NotRegularFile as exc:
        raise refuse(f"{what} {exc}") from None
    if more:
        raise refuse(f"{what} {path} is larger than {limit} bytes{too_large}")
    return data
