"""Open local files the way a monitor must: never blocking, never without a limit, and
only if a regular file stands at the path.

Every file a checker reads (a pidfile, a log file, a ``/proc`` entry, any path from the
config) and every spool segment the daemon reads goes through here:

- it is opened with ``O_NONBLOCK`` (a FIFO with no writer does not block the open) and
  ``O_NOCTTY``, and refused unless it is a regular file: a pidfile that is a FIFO or
  ``/dev/zero`` is a configuration fault, not data (:class:`NotRegularFile`, worded
  "pidfile … is not a regular file (a FIFO)"); a spool segment replaced by a FIFO
  blocked the insert thread forever in ``open`` (atk12d F5), and segments are opened
  without following a link (``follow=False``: ``ELOOP``), since a symlink to
  ``/dev/zero`` was read as zeros and, of size 0 to ``stat``, taken for an emptied
  segment;
- it is read with a byte cap (:func:`read_capped`): a 500 MB line or an endless
  device never reaches memory.

A refusal is an ``OSError`` of the file's own kind (``EINVAL``; ``ELOOP`` for a link not
followed), never a shortage's (:mod:`server.core.oserrors`). A read of a regular file on a
hung network mount can still block; that is the engine's to bound (one thread per hung
service, see :mod:`server.scheduler`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class NotRegularFile(OSError):
    """The path exists but is a FIFO, device, socket or directory; ``kind`` says which.
    ``errno`` EINVAL, ``strerror`` "not a regular file (<kind>)", ``filename`` the path;
    ``str()`` "<path> is not a regular file (<kind>)"."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", path)
        self.path = path
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.path} is {self.strerror}"


def kind_of(mode: int) -> str:
    """``"a FIFO"``, ``"a character device"`` … for a stat mode; ``"a regular file"``."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "an unknown file type"


def open_regular(path: str | Path, *, follow: bool = True) -> int:
    """A read-only file descriptor on ``path`` (close it), opened without blocking;
    ``follow=False``: a symlink is refused too (``ELOOP``).

    Raises :class:`NotRegularFile` for anything but a regular file (``/proc``
    entries are regular files), :class:`OSError` when it cannot be opened.
    """
    path = str(path)
    try:
        fd = os.open(path, _OPEN_FLAGS if follow else _OPEN_FLAGS | os.O_NOFOLLOW)
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


def read_regular(path: Path) -> bytes:
    """The whole of the regular file ``path``, not through a link (a spool segment, whose
    size the log bounds; :func:`open_regular`'s errors)."""
    fd = open_regular(path, follow=False)
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


def remove_own(path: Path) -> OSError | None:
    """Remove ``path`` (a file the caller made, or a link someone put at its name), never
    raising: a directory at its name is someone else's and left where it is (``rmdir``
    would be wrong, ``unlink`` raises IsADirectoryError), and a file that cannot be
    removed (an immutable one: EPERM) stays. Returns why it stayed (None: gone, or was
    already)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            return IsADirectoryError(errno.EISDIR, "a directory is at the file's name", str(path))
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc
    return None


def sync_directory(directory: Path) -> None:
    """fsync ``directory``: the entries created, renamed or removed in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def own_directory(path: Path) -> None:
    """Make ``path`` a real directory of its own: a symbolic link in its place (to
    anywhere) is removed, its target left alone, with one WARNING, so that nothing is
    written through it (atk17, atk18: damaged bytes and set-aside batches went outside
    the spool). Raises OSError (no room; another kind of file in its place)."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            path.unlink()
            logging.getLogger("lightbulb.spool").warning(
                "%s was a symbolic link: removed (what it pointed at is left alone) and "
                "made a directory of the spool's own", path)  # fmt: skip
    except FileNotFoundError:
        pass
    path.mkdir(parents=True, exist_ok=True)
