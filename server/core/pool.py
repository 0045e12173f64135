"""A bounded thread pool whose hung tasks do not shrink it.

Blocking checks (``/proc`` reads, the host's counters) and DNS lookups run here.
A task that overruns its deadline keeps its thread (Python cannot kill a
thread), so the caller marks it :meth:`overdue`; the pool then starts one
replacement thread, up to ``max_extra`` of them, so hung tasks never starve
the rest. When the overdue task finally returns, its thread retires. Threads are
daemons: a task stuck forever never holds up the exit of the process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class DeadlinePool:
    """``size`` threads started on demand, plus one per overdue task (``max_extra`` at most,
    default ``size``).

    :meth:`submit` returns a :class:`concurrent.futures.Future`; cancelling it
    before a thread picks it up means the task never runs.
    """

    def __init__(self, size: int, name: str, max_extra: int | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self.max_extra = size if max_extra is None else max_extra
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._overdue = 0
        self._closed = False

    @property
    def overdue_count(self) -> int:
        """Tasks still running past their deadline (each holding a thread)."""
        return self._overdue

    def _allowed(self) -> int:
        return self.size + min(self._overdue, self.max_extra)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, fn, args))
        self._grow()
        return future

    def overdue(self, future: Future[Any]) -> None:
        """``future`` is past its deadline: lend the pool a thread until it is done.

        Works for a task still queued too: the lent thread takes it (or the next one).
        """
        with self._lock:
            self._overdue += 1
        future.add_done_callback(self._returned)
        self._grow()

    def _returned(self, _future: Future[Any]) -> None:
        with self._lock:
            self._overdue -= 1

    def _grow(self) -> None:
        with self._lock:
            if self._closed or self._idle > 0 or self._threads >= self._allowed():
                return
            self._threads += 1
            index = self._threads
        threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is _STOP:
                with self._lock:
                    self._threads -= 1
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the waiting caller
                    future.set_exception(exc)
            del future, fn, args, item
            with self._lock:
                if self._threads > self._allowed():
                    self._threads -= 1  # a replacement lent while a task hung: retire
                    return

    def shutdown(self) -> None:
        """Stop idle threads; tasks still running finish (or hang) on their own."""
        with self._lock:
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(_STOP)
