"""Blocking (local) checks: run and recorded in a pool thread, watched by the loop.

A local check (``/proc`` reads, the host's counters) takes well under a
millisecond, yet running it as an asyncio task cost the check loop several
times that: a task, a timeout scope, a wrapped future, a wait with its own
timer, and the result's trip back through the loop's self-pipe. Here the loop
only hands the check to the :class:`~server.core.pool.DeadlinePool`; the pool
thread runs it, validates it and records it. The loop keeps no timer per check:
it looks at the checks still running when it wakes anyway (the scheduler's
next tick), and sets a wake-up of its own only when a check still running
needs one before that tick.

The deadline guarantees are those of :func:`server.runner.run_with_deadline`:

- a check still queued ``QUEUED_AFTER`` seconds after it was handed over
  (every thread held by a slow or hung check) gets a thread lent for it, as does
  every other check queued as long: whatever number of hung checks are ahead of
  it, it starts within that time plus one tick;
- a check still running ``SLOW_AFTER`` seconds after it *started* (in a pool
  thread) is taken for hung: the pool lends a thread for the checks behind it;
  a hung check holds one thread at most, lent once;
- at its deadline (``timeout`` from the planned start) whoever comes first wins,
  under one lock: either the result, or the loop recording the checker's
  ``timeout_status`` (or "not started …" if no thread ever took it) while the
  late result is dropped; a thread still held is reported through ``on_overrun``.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from checkers.base import CheckContext, Checker, CheckResult
from server.core.pool import DeadlinePool
from server.runner import SLOW_AFTER, checker_error, late_verdict, validated

QUEUED_AFTER = 0.25  # seconds a check may wait in the pool's queue (they run in ~0.2 ms)


class LocalRun:
    """One run of a blocking check: who finishes it first (result or deadline) records it."""

    __slots__ = ("began", "checker", "ctx", "deadline", "lent", "over", "owner", "started", "work")

    def __init__(self, owner: Any, checker: Checker[Any], ctx: CheckContext, started: float):
        self.owner = owner  # the scheduler's entry: handed back to the callbacks
        self.checker = checker
        self.ctx = ctx
        self.started = started  # monotonic seconds (the loop's clock) the run was started
        self.deadline = started + ctx.timeout
        self.began: float | None = None  # monotonic seconds a pool thread took it
        self.work: Future[None] | None = None
        self.lent = False
        self.over = False  # recorded (by its thread or at its deadline): nothing more to do


Finish = Callable[[LocalRun, CheckResult, float], None]


class LocalRuns:
    """The blocking checks in flight.

    ``finish(run, result, duration)`` records a run's verdict; it is called
    exactly once per run, from the pool thread that ran the check or, at the
    deadline, from the loop (which then also calls ``overrun(run, work)`` when
    the thread is still held). ``lock`` also guards whatever the caller keeps
    about runs in flight (the scheduler's ``Entry.run``).
    """

    def __init__(
        self,
        pool: DeadlinePool,
        finish: Finish,
        overrun: Callable[[LocalRun, Future[Any]], None],
        lock: threading.Lock,
    ) -> None:
        self.pool = pool
        self.finish = finish
        self.overrun = overrun
        self.lock = lock
        self._slow: list[tuple[float, int, LocalRun]] = []  # heap: when to look if it is hung
        self._deadlines: list[tuple[float, int, LocalRun]] = []  # heap
        self._seq = 0
        self._handing: list[LocalRun] = []  # started in this wake-up, handed over by flush()

    def start(
        self, owner: Any, checker: Checker[Any], ctx: CheckContext, started: float
    ) -> LocalRun:
        """A run of the check, handed to the pool by :meth:`flush` (before the loop sleeps);
        the loop must :meth:`sweep` by :meth:`next_due`."""
        run = LocalRun(owner, checker, ctx, started)
        self._seq += 1
        heapq.heappush(self._slow, (started + QUEUED_AFTER, self._seq, run))
        heapq.heappush(self._deadlines, (run.deadline, self._seq, run))
        self._handing.append(run)
        return run

    def flush(self) -> None:
        """Hand the runs started since the last flush to the pool, all at once."""
        runs, self._handing = self._handing, []
        works = self.pool.submit_all([(self._run, (run,)) for run in runs])
        for run, work in zip(runs, works, strict=True):
            run.work = work

    def in_flight(self) -> list[LocalRun]:
        """Runs not recorded yet (loop thread)."""
        return [run for _, _, run in self._deadlines if not run.over]

    def _run(self, run: LocalRun) -> None:
        """In a pool thread: the check, its validation and its recording."""
        run.began = time.monotonic()
        try:
            raw = run.checker.check(run.ctx)
        except TimeoutError:
            result = checker_error(TimeoutError("a timeout inside the checker"))
        except Exception as exc:
            result = checker_error(exc)
        else:
            result = validated(raw)
        with self.lock:
            if run.over:  # its deadline came first: this late result is dropped
                return
            run.over = True
        self.finish(run, result, time.monotonic() - run.started)

    def sweep(self, now: float) -> None:
        """Lend threads for runs hung past SLOW_AFTER, record runs past their deadline."""
        while self._slow and self._slow[0][0] <= now:
            _, seq, run = heapq.heappop(self._slow)
            if run.over or run.work is None or run.work.done():
                continue
            began = run.began
            if began is None:
                # Still queued: every thread is held by a check running this long, hung
                # or about to be taken for hung. It gets a thread of its own now, as does
                # every check queued as long, so no number of hung checks ahead of it
                # delays it by more than QUEUED_AFTER (they never chain, 0.5 s each).
                self.pool.overdue(run.work)
                run.lent = True
            elif not run.lent and now - began < SLOW_AFTER:
                heapq.heappush(self._slow, (began + SLOW_AFTER, seq, run))
            elif not run.lent:
                self.pool.overdue(run.work)  # taken for hung: the queue behind it goes on
                run.lent = True
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, run = heapq.heappop(self._deadlines)
            with self.lock:
                if run.over:
                    continue
                run.over = True
            work = run.work
            assert work is not None

            def overrun(held: Future[Any], run: LocalRun = run) -> None:
                self.overrun(run, held)

            verdict = late_verdict(
                run.checker, run.ctx, self.pool, work, lent=run.lent, on_overrun=overrun
            )
            self.finish(run, verdict, now - run.started)
        self._prune()

    def next_due(self) -> float | None:
        """When the loop must next :meth:`sweep` (monotonic seconds), None if no run needs it."""
        self._prune()
        due = [heap[0][0] for heap in (self._slow, self._deadlines) if heap]
        return min(due) if due else None

    def _prune(self) -> None:
        """Forget runs already recorded (most local checks end within a millisecond)."""
        for heap in (self._slow, self._deadlines):
            while heap and heap[0][2].over:
                heapq.heappop(heap)
