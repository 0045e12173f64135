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


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    cmdline: str  # arguments joined by spaces
    create_time: float  # seconds since the epoch, as psutil gives it


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


def _scan() -> Snapshot:
    rows: list[tuple[int, int, str, str, float]] = []
    boot = psutil.boot_time()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            row = _read(int(entry.name), boot)
            if row is not None:
                rows.append(row)
    excluded = _family({pid: ppid for pid, ppid, *_ in rows}, os.getpid())
    kept = tuple(
        ProcessInfo(pid, name, cmdline, created)
        for pid, _ppid, name, cmdline, created in rows
        if pid not in excluded
    )
    return Snapshot(time.monotonic(), kept, {p.pid: p for p in kept})


def _read(pid: int, boot: float) -> tuple[int, int, str, str, float] | None:
    """(pid, ppid, name, cmdline, create time) from /proc/<pid>/{stat,cmdline}; None if gone.

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
    return pid, int(fields[1]), name, cmdline, int(fields[19]) / CLOCK_TICKS + boot


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
