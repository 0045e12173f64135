"""Poll every service on its own interval from one asyncio event loop.

One thread runs the loop. Each service is planned on a fixed grid: first run
at a stable spread offset (a hash of the id, so restarts keep the spread),
then every ``interval``. Plans are kept in a timer wheel of TICK-second slots
with one loop timer for the earliest slot, so a thousand services cost the loop
one wake-up per slot, not one heap entry and wake-up each. When it fires, a
network check starts as a task on the loop under a hard deadline
(:func:`server.runner.run_with_deadline`), so a hung target costs one idle
socket, never a thread; a blocking check goes to a bounded :class:`DeadlinePool`
whose thread runs and records it, the loop only watching the deadline
(:mod:`server.local_runs`). Either way the verdict is recorded on time.

A service never overlaps itself: if its previous check is still being
finished when the timer fires, the new run starts the moment it ends, and the
lag says so. Lag is the actual start minus the planned start on the grid.

A blocking check whose thread is still busy past its deadline (a read of a
FIFO, a hung NFS mount) holds that thread until the read returns, if ever. Its
service starts no other run meanwhile: each planned run records, on time, the
checker's ``timeout_status`` "previous check still running for 12 s (hung in
open() at …)". So a hung service holds one thread at most, the pool replaces
it, and the ``max_workers`` threads keep serving everyone else.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any

import checkers
from checkers.base import CheckContext, Checker, CheckResult
from checkers.netio import close_loop_resources
from server.config.models import ServiceConfig
from server.core.clock import Clock
from server.core.pool import DeadlinePool, name_os_thread
from server.local_runs import LocalRun, LocalRuns
from server.recorder import Recorder
from server.runner import run_with_deadline
from server.schedule_plan import BLOCKING_GRID, TICK, Entry, SchedulerStats, spread_offset

log = logging.getLogger("lightbulb.scheduler")
ADD_LEAD = 0.1  # seconds between planning first runs and the earliest of them
STOP_SLACK = 1.5  # seconds shutdown waits past its grace for the loop to wind down


class CheckScheduler:
    """Timers, tasks and the thread pool of the checks; thread-safe :meth:`sync`."""

    def __init__(
        self,
        recorder: Recorder,
        clock: Clock,
        *,
        max_workers: int,
        build: Callable[[str, dict[str, Any]], Checker[Any]] = checkers.build_checker,
    ) -> None:
        self.recorder = recorder
        self.build = build
        self.clock = clock
        self.stats = SchedulerStats()
        self.entries: dict[str, Entry] = {}
        # No cap on lent threads: a service holds one at most (see _still_hung).
        self.pool = DeadlinePool(max_workers, "lightbulb-check")
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="lightbulb-checks", daemon=True)
        self._stopping = False
        self._slots: dict[int, list[Entry]] = {}  # tick -> entries planned then
        self._ticks: list[int] = []  # heap of the ticks in _slots
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at: int | None = None
        # Guards Entry.run/waiting and the counters: blocking checks finish in pool threads.
        self.lock = threading.Lock()
        self.local = LocalRuns(self.pool, self._finish_local, self._held, self.lock)

    def _run_loop(self) -> None:
        name_os_thread("lb-checks")  # `top -H` and /proc show the check loop by name
        self.loop.run_forever()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def durations(self) -> dict[str, float]:
        """Seconds the last completed check of each service took."""
        entries = list(self.entries.items())  # read from other threads
        return {sid: e.last_duration for sid, e in entries if e.last_duration is not None}

    def checks_by_service(self) -> dict[str, int]:
        """Results recorded per service since start (or since its schedule last changed)."""
        return {sid: e.checks for sid, e in list(self.entries.items())}

    def in_flight(self) -> int:
        return sum(1 for e in list(self.entries.values()) if e.task or e.run)

    def shutdown(self, wait_seconds: float) -> None:
        """Stop the timers; give checks in flight up to ``wait_seconds``, then cancel them.

        Checks end by their own deadline anyway, so this returns within
        ``wait_seconds`` plus a few milliseconds whatever the targets do.
        """
        self._stopping = True
        if not self._thread.is_alive():
            self._close_checkers()
            self.pool.shutdown()
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(wait_seconds), self.loop)
        try:  # cancelling takes the loop a moment; an overloaded loop is not waited for long
            future.result(wait_seconds + STOP_SLACK)
        except TimeoutError:
            log.warning("check loop did not stop in time")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_SLACK)
        self.pool.shutdown()

    async def _shutdown(self, wait_seconds: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._slots.clear()
        tasks: list[asyncio.Future[Any]] = [e.task for e in self.entries.values() if e.task]
        runs = {asyncio.wrap_future(r.work): r for r in self.local.in_flight() if r.work}
        if tasks or runs:
            _done, pending = await asyncio.wait([*tasks, *runs], timeout=wait_seconds)
            with self.lock:
                for run in (runs[p] for p in pending if p in runs):
                    run.over = True  # its result, if it ever comes, is not recorded
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        self._close_checkers()
        await close_loop_resources()

    def _close_checkers(self) -> None:
        for entry in self.entries.values():
            try:
                entry.checker.close()
            except Exception:
                log.exception("closing the checker of %s failed", entry.service.id)

    # -- services ----------------------------------------------------------------------
    def sync(self, services: list[ServiceConfig]) -> dict[str, list[str]]:
        """Make the timers match ``services``: add new, drop removed, rebuild changed ones."""
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._sync_async(services), self.loop)
            return future.result()
        return self._sync(services)

    async def _sync_async(self, services: list[ServiceConfig]) -> dict[str, list[str]]:
        return self._sync(services)

    def _sync(self, services: list[ServiceConfig]) -> dict[str, list[str]]:
        wanted = {s.id: s for s in services if s.enabled}
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for sid in list(self.entries):
            if sid not in wanted:
                self._remove(sid)
                changes["removed"].append(sid)
            elif wanted[sid] != self.entries[sid].service:
                self._remove(sid)
                changes["changed"].append(sid)
        new = [s for sid, s in wanted.items() if sid not in self.entries]
        built = [(service, self.build(service.type, service.block())) for service in new]
        # One instant for every first run, a little ahead, so none starts out already late.
        base_tick = math.ceil((self.loop.time() + ADD_LEAD) / TICK)
        base_wall = self.clock.now() + timedelta(seconds=base_tick * TICK - self.loop.time())
        for service, checker in built:
            offset = spread_offset(service.id, service.interval.total_seconds())
            if not checker.is_async():
                offset = offset // BLOCKING_GRID * BLOCKING_GRID
            entry = Entry(service, checker, base_wall + timedelta(seconds=offset))
            entry.every = max(1, round(service.interval.total_seconds() / TICK))
            entry.due = base_tick + round(offset / TICK)
            self.entries[service.id] = entry
            if self._thread.is_alive():
                self._arm(entry)
            if service.id not in changes["changed"]:
                changes["added"].append(service.id)
        if not self._thread.is_alive():
            self.loop.call_soon(self._arm_all)
        return changes

    def _arm_all(self) -> None:
        now = self.loop.time() / TICK
        for entry in self.entries.values():
            if not entry.armed and entry.task is None and entry.run is None:
                if entry.due < now:  # the loop started late: keep each phase, skip the past
                    entry.due += (int(now - entry.due) // entry.every + 1) * entry.every
                self._arm(entry)

    def _arm(self, entry: Entry) -> None:
        slot = self._slots.get(entry.due)
        if slot is None:
            slot = self._slots[entry.due] = []
            heapq.heappush(self._ticks, entry.due)
            if self._wake_at is None or entry.due < self._wake_at:
                self._set_wake(entry.due)
        slot.append(entry)
        entry.armed = True

    def _set_wake(self, tick: int) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = tick
        self._wake = self.loop.call_at(tick * TICK, self._on_tick)

    def _on_tick(self) -> None:
        """Fire every slot that is due; then sleep until the next one (or a local run's need)."""
        self._wake = self._wake_at = None
        self.local.sweep(self.loop.time())
        now = self.loop.time() / TICK + 1e-6
        while self._ticks and self._ticks[0] <= now:
            tick = heapq.heappop(self._ticks)
            for entry in self._slots.pop(tick, ()):
                entry.armed = False
                if not entry.removed:
                    self._fire(entry)
        self.local.flush()  # the tick's local checks go to the pool together
        if not self._stopping:
            self._wake_for_sweep(self._ticks[0] if self._ticks else None)

    def _wake_for_sweep(self, tick: int | None) -> None:
        """Wake at ``tick`` or earlier if a blocking check in flight needs a look by then."""
        due = self.local.next_due()
        if due is not None:
            wanted = math.ceil(due / TICK - 1e-6)
            tick = wanted if tick is None else min(tick, wanted)
        if tick is not None and (self._wake_at is None or tick < self._wake_at):
            self._set_wake(tick)

    def _remove(self, service_id: str) -> None:
        entry = self.entries.pop(service_id)
        entry.removed = True
        if entry.task is not None:
            entry.task.cancel()
        run = entry.run
        if run is not None and run.work is not None:
            run.work.cancel()  # if still queued; a running one is not recorded (not an entry)
        try:
            entry.checker.close()
        except Exception:
            log.exception("closing the checker of %s failed", service_id)

    # -- running -----------------------------------------------------------------------
    def _fire(self, entry: Entry) -> None:
        planned = entry.due * TICK
        now = self.loop.time() / TICK
        entry.due += entry.every
        if entry.due <= now:  # the loop was blocked past whole intervals: skip them
            entry.due += (int(now - entry.due) // entry.every + 1) * entry.every
        self._arm(entry)
        if self._stopping:
            return
        with self.lock:
            busy = entry.task is not None or entry.run is not None
            if busy:
                entry.waiting = planned  # starts as soon as the one in flight is finished
        if busy:
            return
        if entry.held is not None and not entry.held.done():
            self._still_hung(entry, planned)
            return
        entry.held = None
        self._start(entry, planned)

    def _still_hung(self, entry: Entry, planned: float) -> None:
        """Record, on time, that the previous run still holds its thread; start none."""
        assert entry.held is not None
        now = self.loop.time()
        self.stats.lags_ms.append(max(0.0, (now - planned) * 1000))
        what = self.pool.where(entry.held) or entry.checker.describe() or "the checker"
        message = (
            f"previous check still running for {now - entry.held_since:.0f} s (hung in {what})"
        )
        self._record(entry, CheckResult(entry.checker.timeout_status, message), self.clock.now())

    def _start(self, entry: Entry, planned: float) -> None:
        started = self.loop.time()
        self.stats.lags_ms.append(max(0.0, (started - planned) * 1000))
        if entry.checker.is_async():
            entry.task = self.loop.create_task(self._run(entry, started))
            return
        timeout = entry.service.timeout.total_seconds()
        ctx = CheckContext(entry.service.id, self.clock.now(), timeout)
        with self.lock:  # the run may end in its thread before this returns
            entry.run = self.local.start(entry, entry.checker, ctx, started)

    def _finish_local(self, run: LocalRun, result: CheckResult, duration: float) -> None:
        """A blocking check's verdict (from its pool thread, or the loop at its deadline)."""
        entry: Entry = run.owner
        entry.last_duration = duration
        if self.entries.get(entry.service.id) is entry:
            self._record(entry, result, run.ctx.now, timed_out=duration >= run.ctx.timeout)
        with self.lock:
            entry.run = None
            planned, entry.waiting = entry.waiting, None
        if planned is None or self._stopping or self.entries.get(entry.service.id) is not entry:
            return
        self.loop.call_soon_threadsafe(self._restart, entry, planned)  # from any thread

    def _restart(self, entry: Entry, planned: float) -> None:
        """The run held back by the one in flight starts now (loop thread)."""
        if not self._stopping and self.entries.get(entry.service.id) is entry:
            self._start(entry, planned)
            self.local.flush()
            self._wake_for_sweep(None)

    def _held(self, run: LocalRun, work: Future[Any]) -> None:
        """A blocking check's thread is still busy at its deadline: no other run till it ends."""
        entry: Entry = run.owner
        entry.held, entry.held_since = work, run.started

    async def _run(self, entry: Entry, started: float) -> None:
        """A network check, on the loop (it holds no thread: nothing to overrun)."""
        sid = entry.service.id
        now = self.clock.now()
        timeout = entry.service.timeout.total_seconds()
        try:
            ctx = CheckContext(sid, now, timeout)
            result = await run_with_deadline(entry.checker, ctx, self.pool)
            entry.last_duration = self.loop.time() - started
            if self.entries.get(sid) is entry:
                self._record(entry, result, now, timed_out=entry.last_duration >= timeout)
        finally:
            entry.task = None
            if entry.waiting is not None and self.entries.get(sid) is entry:
                planned, entry.waiting = entry.waiting, None
                if not self._stopping:
                    self._start(entry, planned)

    def _record(
        self, entry: Entry, result: CheckResult, at: datetime, timed_out: bool = False
    ) -> None:
        try:
            self.recorder.record(entry.service, result, at)
        except Exception:
            log.exception("recording a result of %s failed", entry.service.id)
        # Counted once recorded: whoever sees the count move (``/metrics``, a test waiting
        # on it, a stop that follows) finds the result's rows handed to the writer and the
        # alert engine's verdict on it taken (its notices submitted), never a count ahead
        # of its check.
        with self.lock:  # from the loop and from pool threads
            self.stats.checks += 1
            self.stats.timeouts += timed_out
            entry.checks += 1
