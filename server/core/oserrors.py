"""What an ``OSError`` from a file says: a shortage of the system, or a fault of the file.

One home for the kinds and for the fix each errno calls for, so the insert
thread (reading waiting rows back) and the start (reading the log) word them
alike. A **shortage** (descriptors, memory, ``EAGAIN``/``EINTR``, a full disk)
says nothing about the file: the same read succeeds once the system has what it
lacks, so it is retried. Anything else is the file's own fault (permissions,
``EIO``, a directory in its place): it needs an operator.
"""

from __future__ import annotations

import errno

#: errnos of a full disk: no space, or the user's quota reached (spool, staging, ClickHouse)
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
#: errnos that say the system (not the file) is short of something: retry later
SHORTAGES = NO_SPACE | frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN,
                                  errno.EINTR, errno.ENOBUFS, errno.EBUSY})  # fmt: skip
#: errnos of running out of file descriptors (the process's, the system's): the embedded
#: engine must not be entered either (:mod:`server.core.descriptors`)
DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
READ_ACCESS = "give the daemon's user read access to it (chown, chmod u+r)"
FIXES = {
    errno.EMFILE: "raise the daemon's open-files limit (ulimit -n, systemd LimitNOFILE=)",
    errno.ENFILE: "the system's file table is full: raise fs.file-max or stop what holds files",
    errno.ENOMEM: "free memory on the host",
    errno.ENOSPC: "free bytes and inodes on the spool's filesystem (df -h, df -i)",
    errno.EDQUOT: "raise the disk quota of the daemon's user",
    errno.EACCES: READ_ACCESS,
    errno.EPERM: READ_ACCESS,
    errno.EIO: "the disk reports a read error: check dmesg and the disk's health, and move "
    "scheduler.spool_dir to a good disk",
    errno.EISDIR: "something else stands where the spool's file should be: remove it",
}
# a link, FIFO or device where a segment should be (server.core.files.open_regular)
FIXES[errno.ELOOP] = FIXES[errno.EINVAL] = FIXES[errno.EISDIR]


def is_shortage(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError`` or ``MemoryError``) is the system's shortage."""
    return isinstance(exc, MemoryError) or getattr(exc, "errno", None) in SHORTAGES


def fix(exc: BaseException, otherwise: str = "put the spool's file back as it was") -> str:
    """The fix for ``exc``, worded for the log (``otherwise`` for an errno without one)."""
    if isinstance(exc, MemoryError):
        return FIXES[errno.ENOMEM]
    return FIXES.get(getattr(exc, "errno", None) or 0, otherwise)


def why(exc: BaseException) -> str:
    """``exc`` in a few words: its ``strerror`` (without the file name), else its type."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)
