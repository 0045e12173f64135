"""A tick's blocking checks, run by one pool task and recorded in one loop callback.

The blocking checks due in the same scheduler tick (``/proc`` reads, pidfiles,
the host's counters: a fraction of a millisecond each) go to the pool as one
task that runs them one after another and hands every verdict back to the event
loop in one ``call_soon_threadsafe``. Handing each check over on its own (a pool
submit, a thread wake-up, an asyncio future and a wake-up of the loop through its
self-pipe) cost more CPU than the check itself.

Deadlines stay per check. The batch is watched by one loop timer at ``SLOW_AFTER``
(or the shortest timeout in it, if sooner). If the batch is not finished by then,
it is escalated: the verdicts already made are recorded, and each check not yet
done gets its own task under :func:`server.runner.run_with_deadline`, counted
from the batch's start, exactly as if it had been handed over alone: the one
running is taken for hung (the pool lends a thread), a second pool task goes on
with the checks not started, and each deadline's verdict is recorded on time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from checkers.base import CheckContext, Checker, CheckResult
from server.core.pool import DeadlinePool
from server.runner import SLOW_AFTER, checked, error_result

# (the scheduler's entry, its context, the result, seconds the check took)
Finished = tuple[Any, CheckContext, CheckResult, float]
Done = Callable[[list[Finished]], None]
Escalate = Callable[[Any, CheckContext, Future[CheckResult]], None]


class TickBatch:
    """Blocking checks started together at loop time ``started``.

    ``items`` are ``(entry, checker, ctx)``; ``on_done`` gets every finished
    ``(entry, ctx, result, seconds)`` on the loop, once; ``on_escalate(entry, ctx, work)``
    is called on the loop for each check not finished at the watch timer (the
    caller awaits ``work`` under its deadline).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: DeadlinePool,
        items: list[tuple[Any, Checker[Any], CheckContext]],
        started: float,
        *,
        on_done: Done,
        on_escalate: Escalate,
    ) -> None:
        self.loop = loop
        self.pool = pool
        self.started = started
        self.on_done = on_done
        self.on_escalate = on_escalate
        self.entries = [entry for entry, _c, _x in items]
        self.contexts = [ctx for _e, _c, ctx in items]
        self.works: list[Future[CheckResult]] = [Future() for _ in items]
        self.seconds = [0.0] * len(items)
        self._queue = deque(zip(range(len(items)), self.works, items, strict=True))
        self._left = len(items)
        self._lock = threading.Lock()
        self.escalated = False
        self.finished = False
        watch = min([SLOW_AFTER, *(ctx.timeout for _e, _c, ctx in items)])
        self._timer = loop.call_at(started + watch, self.escalate)
        pool.submit(self._drain)

    # -- in a pool thread --------------------------------------------------------------
    def _drain(self) -> None:
        clock = self.loop.time
        while True:
            try:
                index, work, (_entry, checker, ctx) = self._queue.popleft()
            except IndexError:
                return
            began = clock()
            self.pool.run_in_this_thread(work, checked, checker, ctx)
            self.seconds[index] = clock() - began
            with self._lock:
                self._left -= 1
                last = self._left == 0
            if last:
                try:
                    self.loop.call_soon_threadsafe(self._finish)
                except RuntimeError:  # the loop is closed: the daemon is stopping
                    return

    def _one(self, index: int, work: Future[CheckResult], checker: Any, ctx: Any) -> None:
        began = self.loop.time()
        self.pool.run_in_this_thread(work, checked, checker, ctx)
        self.seconds[index] = self.loop.time() - began

    # -- on the loop -------------------------------------------------------------------
    def _finish(self) -> None:
        if self.escalated or self.finished:
            return
        self.finished = True
        self._timer.cancel()
        self.on_done(self._results(range(len(self.works))))

    def _results(self, indexes: Any) -> list[Finished]:
        out = []
        for i in indexes:
            work = self.works[i]
            if work.cancelled():
                continue
            failure = work.exception()
            result = work.result() if failure is None else error_result(failure)
            out.append((self.entries[i], self.contexts[i], result, self.seconds[i]))
        return out

    def escalate(self) -> None:
        """Record what is done; give every other check its own deadline task (on the loop)."""
        if self.escalated or self.finished:
            return
        self.escalated = True
        self._timer.cancel()
        done = {i for i, work in enumerate(self.works) if work.done()}
        self.on_done(self._results(sorted(done)))
        # The check running may hang, and so may any other: each one not started yet
        # becomes a pool task of its own, as if never batched.
        while True:
            try:
                index, work, (_entry, checker, ctx) = self._queue.popleft()
            except IndexError:
                break
            self.pool.submit(self._one, index, work, checker, ctx)
        for i, work in enumerate(self.works):
            if i not in done:  # the same snapshot: each check is recorded once, one way
                self.on_escalate(self.entries[i], self.contexts[i], work)
