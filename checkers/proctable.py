"""One scan of the process table per tick, shared by every ``name``/``cmdline`` match.

A thousand process checks matching by command line would otherwise read every
``/proc/<pid>/cmdline`` a thousand times a tick. :func:`snapshot` rescans at most
every ``MAX_AGE`` seconds; checks in between share the last scan.

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

MAX_AGE = 1.0  # seconds: one scan per tick of the scheduler


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
    for proc in psutil.process_iter(["ppid", "name", "cmdline", "create_time"]):
        info = proc.info
        rows.append(
            (
                proc.pid,
                info["ppid"] or 0,
                info["name"] or "",
                " ".join(info["cmdline"] or []),
                info["create_time"] or 0.0,
            )
        )
    excluded = _family({pid: ppid for pid, ppid, *_ in rows}, os.getpid())
    kept = tuple(
        ProcessInfo(pid, name, cmdline, created)
        for pid, _ppid, name, cmdline, created in rows
        if pid not in excluded
    )
    return Snapshot(time.monotonic(), kept, {p.pid: p for p in kept})


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
