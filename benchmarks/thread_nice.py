"""CPU of a process's threads by name and ``nice``, sampled from ``/proc`` (``ingest.py``).

Every ``every`` s each thread's CPU since the last look is put down to its name
(digits stripped: the engine numbers its pool threads) and the ``nice`` it has now.
A merge at -20 or 0 takes a core ahead of the ingest workers, at 10 behind them
(server/storage/priority.py); this says which one a run saw. Attribution is as fine
as the interval (a thread's nice changes when it takes another job) and the kernel's
10 ms ticks; each look reads ~60 ``stat`` files (~1% of a core at 0.1 s).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> dict[str, tuple[str, int, int]]:
    """Thread id -> (name without digits, nice, CPU ticks) of ``pid``'s threads now."""
    out = {}
    tasks = Path(f"/proc/{pid}/task")
    try:
        tids = os.listdir(tasks)
    except OSError:
        return out
    for tid in tids:
        try:
            stat = (tasks / tid / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")].rstrip("0123456789_-")
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (name, int(fields[16]), int(fields[11]) + int(fields[12]))
    return out


class NiceSampler(threading.Thread):
    """Samples ``pid`` until :meth:`stop`; :meth:`summary` then says where its CPU went."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.spent: dict[tuple[str, int], int] = {}  # (name, nice) -> ticks
        self._halt = threading.Event()

    def run(self) -> None:
        last = _threads(self.pid)
        while not self._halt.wait(self.every):
            now = _threads(self.pid)
            for tid, (name, nice, ticks) in now.items():
                used = ticks - last.get(tid, (name, nice, ticks))[2]
                if used > 0:
                    self.spent[(name, nice)] = self.spent.get((name, nice), 0) + used
            last = now

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def summary(self, least: float = 0.05) -> str:
        """``name@nice seconds`` of at least ``least`` s, largest first."""
        top = sorted(self.spent.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name}@{nice} {ticks / TICK:.1f}" for (name, nice), ticks in top
                         if ticks / TICK >= least)  # fmt: skip
