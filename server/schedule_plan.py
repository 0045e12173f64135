"""A service's place in the check plan: the grid of ticks, its :class:`Entry`, its spread.

The plan's clock is an integer count of ``TICK``-second ticks; a service runs at
its spread offset (:func:`spread_offset`), then every interval. The loop that
keeps the plan is :class:`server.scheduler.CheckScheduler`; :class:`SchedulerStats`
is what it counts.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checkers.base import Checker
from server.config.models import ServiceConfig
from server.local_runs import LocalRun

# Runs are planned on a grid of TICK seconds (the clock of the plan is an integer
# count of ticks, so equal times stay equal): services due in the same tick start
# in one wake-up of the loop. Waking once per service instead cost ~0.1 ms of
# kernel time per check on a loaded machine, more than the check itself.
TICK = 0.02
# Blocking checks (well under a millisecond) start on a coarser grid: the loop and
# the pool wake once for several, not once each (the wake-ups cost more than the
# checks); each keeps its own pool task and deadline. Lag is measured from the grid.
BLOCKING_GRID = 0.5


@dataclass
class Entry:
    """One scheduled service: its checker, where it is on the plan, what is in flight."""

    service: ServiceConfig
    checker: Checker[Any]
    first_run: datetime  # the first planned run (wall clock); later ones follow every interval
    due: int = 0  # tick of the next planned run (loop time = due * TICK)
    every: int = 1  # the interval in ticks
    armed: bool = False  # in a slot of the wheel
    removed: bool = False
    task: asyncio.Task[None] | None = None  # a network (async) check in flight
    run: LocalRun | None = None  # a blocking check in flight (under CheckScheduler.lock)
    waiting: float | None = None  # planned time of a run held back by the one in flight
    last_duration: float | None = None  # seconds the last completed check took
    checks: int = 0  # results recorded for this service since it was scheduled
    held: Future[Any] | None = None  # a run past its deadline whose thread is still busy
    held_since: float = 0.0  # loop time that run started


@dataclass
class SchedulerStats:
    """Checks recorded, timeouts, and the last 20,000 lags (ms, start minus planned)."""

    checks: int = 0
    timeouts: int = 0
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))

    def lag_percentile(self, q: float) -> float:
        """The ``q`` (0..1) quantile of the kept lags in ms; 0.0 with none."""
        data = sorted(self.lags_ms)
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]


def spread_offset(service_id: str, interval: float) -> float:
    """Where in its first interval a service starts: stable per id, uniform over ids."""
    return (zlib.crc32(service_id.encode()) % 10_000) / 10_000 * interval
