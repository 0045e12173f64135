"""The queue of waitress's threads in two lanes: pages and API reads served at most
``limit`` at once, every other task (a push, a probe, ``/metrics``) passing the reads
that wait, so a flood of expensive pages never takes the last thread (issue #12's door;
#14's dashboard answers under load). Used by :class:`server.web.waitress_door.Dispatcher`
as waitress uses its deque: under the dispatcher's lock."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any


def _is_read(channel: Any) -> bool:
    """Whether the request ``channel`` is queued for is a page or API read the door
    counts (:meth:`Door.admit_read`)."""
    return bool(channel.requests) and channel.requests[0].reader is not None


class Served:
    """A read taken from :class:`Lanes` to be served: when it is done, its place is
    free and a waiting read may go (waking a thread under the dispatcher's lock)."""

    def __init__(self, channel: Any, lanes: Lanes) -> None:
        self.channel, self.lanes = channel, lanes

    def service(self) -> None:
        try:
            self.channel.service()
        finally:
            self.lanes.done()

    def cancel(self) -> None:
        self.channel.cancel()

    def __repr__(self) -> str:
        return repr(self.channel)


class Lanes:
    """waitress's task queue (a deque there), in two lanes: at most ``limit`` reads are
    served at once and the others wait, in their order, while any other task (a push, a
    probe, ``/metrics``) passes them, so a thread is always left for those however many
    reads are asked. True while a task may be taken now; used under the dispatcher's
    lock, as waitress uses its queue."""

    def __init__(self, lock: threading.Lock, woken: threading.Condition, limit: int) -> None:
        self.limit, self.serving = limit, 0
        self._lock, self._woken = lock, woken
        self._tasks: deque[Any] = deque()

    def append(self, channel: Any) -> None:
        self._tasks.append(channel)

    def _takeable(self) -> int | None:
        for i, channel in enumerate(self._tasks):
            if self.serving < self.limit or not _is_read(channel):
                return i
        return None

    def __bool__(self) -> bool:
        return self._takeable() is not None

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._tasks))

    def clear(self) -> None:
        self._tasks.clear()

    def popleft(self) -> Any:
        """The first task that may go now (IndexError: none)."""
        i = self._takeable()
        if i is None:
            raise IndexError("no task may be taken now")
        channel = self._tasks[i]
        del self._tasks[i]
        if not _is_read(channel):
            return channel
        self.serving += 1
        return Served(channel, self)

    def done(self) -> None:
        """A read was served: the next waiting one may go."""
        with self._lock:
            self.serving -= 1
            self._woken.notify()
