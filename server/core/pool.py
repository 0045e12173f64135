"""A bounded thread pool whose hung tasks do not shrink it.

Blocking checks (``/proc`` reads, the host's counters) and DNS lookups run here.
A task that runs too long keeps its thread (Python cannot kill a thread), so the
caller marks it :meth:`overdue`; the pool then starts one replacement thread
(up to ``max_extra`` of them; unlimited by default, the caller bounding how many
tasks it lets hang), so hung tasks never starve the rest. When the overdue task
finally returns, its thread retires. Threads are daemons: a task stuck forever
never holds up the exit of the process. :meth:`where` tells what a hung task is
blocked in, from its thread's current Python frame.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import sysconfig
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()
PR_SET_NAME = 15
# Frames in these directories are the standard library's or a dependency's, not ours.
_LIBRARY_DIRS = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_path("stdlib"), sysconfig.get_path("purelib")}
    if p
)


class DeadlinePool:
    """``size`` threads started on demand, plus one per overdue task (``max_extra`` at most,
    None for no limit).

    :meth:`submit` returns a :class:`concurrent.futures.Future`; cancelling it
    before a thread picks it up means the task never runs.
    """

    def __init__(self, size: int, name: str, max_extra: int | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self.max_extra = max_extra
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._overdue = 0
        self._closed = False
        self._running: dict[Future[Any], int] = {}  # task -> ident of the thread running it

    @property
    def overdue_count(self) -> int:
        """Tasks still running past their deadline (each holding a thread)."""
        return self._overdue

    @property
    def thread_count(self) -> int:
        """Threads alive now (busy, idle or held by overdue tasks)."""
        return self._threads

    def _allowed(self) -> int:
        extra = self._overdue if self.max_extra is None else min(self._overdue, self.max_extra)
        return self.size + extra

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, fn, args))
        self._grow()
        return future

    def submit_all(
        self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]
    ) -> list[Future[Any]]:
        """:meth:`submit` for several tasks at once, starting one thread at most for them all.

        Tasks due together (a tick's local checks, well under a millisecond each)
        then run one after another on an idle thread rather than each waking or
        starting its own to contend for the GIL; whoever hands over tasks that may
        hang lends threads for those still queued (:meth:`overdue`).
        """
        futures: list[Future[Any]] = []
        for fn, args in calls:
            future: Future[Any] = Future()
            self._queue.put((future, fn, args))
            futures.append(future)
        if futures:
            self._grow()
        return futures

    def overdue(self, future: Future[Any]) -> None:
        """``future`` runs too long: lend the pool a thread until it is done.

        Works for a task still queued too: the lent thread takes it (or the next one).
        """
        with self._lock:
            self._overdue += 1
        future.add_done_callback(self._returned)
        self._grow()

    def where(self, future: Future[Any]) -> str:
        """What the thread running ``future`` is blocked in, e.g. ``open() at pathlib.py:1044,
        from _find() at checkers/python_process.py:131``; empty if it is not running."""
        ident = self._running.get(future)
        frame = sys._current_frames().get(ident) if ident is not None else None
        if frame is None:
            return ""
        inner = _place(frame)
        ours: FrameType | None = frame
        while ours is not None and os.path.realpath(ours.f_code.co_filename).startswith(
            _LIBRARY_DIRS
        ):
            ours = ours.f_back
        if ours is None or ours is frame:
            return inner
        return f"{inner}, from {_place(ours)}"

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
        # Named for the OS too (else it inherits its creator's name, e.g. the check loop's
        # "lb-checks"): per-thread CPU in /proc and `top -H` then tells pool from loop.
        name_os_thread(self.name)
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
                self._running[future] = threading.get_ident()
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the waiting caller
                    self._running.pop(future, None)
                    future.set_exception(exc)
                else:
                    self._running.pop(future, None)
                    future.set_result(result)
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


def name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (Linux, first 15 bytes); a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        return


def _place(frame: FrameType) -> str:
    """``name() at dir/file.py:line`` for one frame (the file's last two path parts)."""
    path = frame.f_code.co_filename.replace(os.sep, "/").split("/")
    return f"{frame.f_code.co_name}() at {'/'.join(path[-2:])}:{frame.f_lineno}"
