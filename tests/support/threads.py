"""Threads of this process and their ``nice``, read from ``/proc``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def threads() -> list[tuple[str, int]]:
    """(name, ``nice``) of every thread of this process (``/proc/self/task/*/stat``)."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        out.append((name, int(stat.rsplit(")", 1)[1].split()[16])))
    return out


def nices() -> set[int]:
    """The ``nice`` of every thread of this process."""
    return {nice for _, nice in threads()}


@contextmanager
def thread_at_nice(nice: int) -> Iterator[int]:
    """A thread of this process left at ``nice`` (as the engine leaves its pool threads),
    alive for the ``with`` block; yields its native id. Ended (and joined) on leaving."""
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def left_at_nice() -> None:
        tid.append(threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, tid[0], nice)
        ready.set()
        done.wait(30)

    worker = threading.Thread(target=left_at_nice)
    worker.start()
    try:
        assert ready.wait(30)
        yield tid[0]
    finally:
        done.set()
        worker.join()
