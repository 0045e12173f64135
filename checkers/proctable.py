"""One scan of the process table at a time, shared by every ``name``/``cmdline`` match.

A thousand process checks matching by command line would otherwise read every
``/proc/<pid>/cmdline`` a thousand times a tick. :func:`snapshot` rescans at most
every ``MAX_AGE`` seconds; checks in between share the last scan. A process found
in it that has since exited is noticed by the check (its /proc entry is gone),
which then asks for a fresh scan; a process that just started is found within
``MAX_AGE``.

The snapshot leaves out this process, its ancestors (a wrapper such as
``timeout 60 lightbulb run``, the shell that started it) and its descendants
(plugins): a monitor must never find itself when it looks for ``billing-worker``
because its own command line mentions ``billing-worker.yaml``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil

MAX_AGE = 2.0  # seconds between scans; a process that vanished triggers a fresh one
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAT_MAX = 4096  # bytes of /proc/<pid>/stat read (a name of 64 bytes and 52 numbers fit)
CMDLINE_MAX = 128 * 1024  # bytes of a command line read and matched (ARG_MAX can be MBs)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Read once: the kernel's btime moves by a tick when the clock is adjusted, and a
# create time computed from a moved boot time would look like another process.
BOOT_TIME = psutil.boot_time()
# /proc/<pid>/stat state letters, named as psutil names them (proc(5))
STATUSES = {
    "R": psutil.STATUS_RUNNING, "S": psutil.STATUS_SLEEPING, "D": psutil.STATUS_DISK_SLEEP,
    "T": psutil.STATUS_STOPPED, "t": psutil.STATUS_TRACING_STOP, "Z": psutil.STATUS_ZOMBIE,
    "X": psutil.STATUS_DEAD, "x": psutil.STATUS_DEAD, "K": "wake-kill",
    "W": psutil.STATUS_WAKING, "I": psutil.STATUS_IDLE, "P": psutil.STATUS_PARKED,
}  # fmt: skip


@dataclass(frozen=True)
class ProcStat:
    """One process's figures from one read of ``/proc/<pid>/stat`` (proc(5))."""

    pid: int
    start_ticks: int  # field 22: with the pid, the process's identity (pids are reused)
    status: str  # psutil's name for the state letter, e.g. "sleeping", "zombie"
    cpu_seconds: float  # utime + stime (fields 14, 15), this process only
    num_threads: int  # field 20
    rss_bytes: int  # field 24 (pages) * page size: the same figure as statm's resident

    @property
    def create_time(self) -> float:
        """Seconds since the epoch, as psutil computes it (start ticks / CLK_TCK + boot)."""
        return self.start_ticks / CLOCK_TICKS + BOOT_TIME


def read_stat(pid: int) -> ProcStat:
    """``pid``'s :class:`ProcStat`; raises ``FileNotFoundError``/``ProcessLookupError`` if gone.

    One read where psutil's ``Process`` plus ``status()``, ``cpu_times()``,
    ``memory_info()`` and ``num_threads()`` read stat, statm and status (and
    build an object per check): about a quarter of the CPU.
    """
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read(STAT_MAX)
    fields = stat[stat.rfind(b")") + 2 :].split()
    return ProcStat(
        pid,
        int(fields[19]),
        STATUSES.get(fields[0].decode(), fields[0].decode()),
        (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        int(fields[17]),
        int(fields[21]) * PAGE_SIZE,
    )


def num_fds(pid: int) -> int:
    """Open file descriptors of ``pid``; raises ``PermissionError`` for another user's process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    cmdline: str  # arguments joined by spaces
    create_time: float  # seconds since the epoch, as psutil gives it
    start_ticks: int  # with the pid, the identity (see ProcStat)


@dataclass(frozen=True)
class Snapshot:
    taken: float  # time.monotonic() of the scan
    processes: tuple[ProcessInfo, ...]  # without us, our ancestors and our descendants
    by_pid: dict[int, ProcessInfo]


_lock = threading.Lock()
_last: Snapshot | None = None


def snapshot(max_age: float = MAX_AGE) -> Snapshot:
    """The process table as of at most ``max_age`` seconds ago (scanning if older)."""
    global _last  # noqa: PLW0603 - one shared scan per process
    with _lock:
        if _last is None or time.monotonic() - _last.taken > max_age:
            _last = _scan()
        return _last


def process(pid: int) -> ProcessInfo | None:
    """``pid``'s entry read afresh (two small reads, no scan); None if it is gone.

    For a check confirming the process it found last time: same pid, same start
    time and still matching is the same process, and still the oldest match (no
    process started since can be older), so the table need not be scanned.
    """
    row = _read(pid)
    if row is None:
        return None
    pid, _ppid, name, cmdline, ticks = row
    return ProcessInfo(pid, name, cmdline, ticks / CLOCK_TICKS + BOOT_TIME, ticks)


def _scan() -> Snapshot:
    rows: list[tuple[int, int, str, str, int]] = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            row = _read(int(entry.name))
            if row is not None:
                rows.append(row)
    excluded = _family({pid: ppid for pid, ppid, *_ in rows}, os.getpid())
    kept = tuple(
        ProcessInfo(pid, name, cmdline, ticks / CLOCK_TICKS + BOOT_TIME, ticks)
        for pid, _ppid, name, cmdline, ticks in rows
        if pid not in excluded
    )
    return Snapshot(time.monotonic(), kept, {p.pid: p for p in kept})


def _read(pid: int) -> tuple[int, int, str, str, int] | None:
    """(pid, ppid, name, cmdline, start ticks) from /proc/<pid>/{stat,cmdline}; None if gone.

    Two reads per process instead of psutil's objects (a third of the cost), with
    psutil's own rules, so values compare equal to a ``psutil.Process``'s: the
    create time is start ticks / CLK_TCK + boot time, and a name cut at 15
    characters is completed from the command line.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read(STAT_MAX)
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read(CMDLINE_MAX)
    except OSError:
        return None
    close = stat.rfind(b")")
    name = stat[stat.find(b"(") + 1 : close].decode("utf-8", "replace")
    fields = stat[close + 2 :].split()
    args = raw.rstrip(b"\0").split(b"\0") if raw else []
    if len(name) >= 15 and args:
        base = os.path.basename(args[0].decode("utf-8", "replace"))
        if base.startswith(name):
            name = base
    cmdline = " ".join(a.decode("utf-8", "replace") for a in args)
    return pid, int(fields[1]), name, cmdline, int(fields[19])


def _family(parents: dict[int, int], me: int) -> set[int]:
    """``me``, its ancestors and its descendants, from a pid -> ppid map."""
    family = {me}
    pid = parents.get(me, 0)
    while pid and pid not in family:  # ancestors, up to init
        family.add(pid)
        pid = parents.get(pid, 0)
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    stack = [me]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in family:
                family.add(child)
                stack.append(child)
    return family
