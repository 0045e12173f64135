"""The write-ahead log's next segment, created ahead of the rotation that needs it.

Creating a file costs an ``open`` and an ``fsync`` of its directory (its entry must
survive a crash): 1-20 ms, more with the disk busy, and a rotation does it under the
lock every append takes. :class:`Spare` does it in a thread once a segment is half
written, so the rotation only swaps descriptors (:meth:`server.wal.Wal._rotate`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


class Spare:
    """At most one created-ahead segment: ``(number, fd)``, never written to here.

    ``create(n)`` opens segment ``n`` (fsyncing its directory entry) and returns
    its descriptor; ``path(n)`` names its file.
    """

    def __init__(self, create: Callable[[int], int], path: Callable[[int], Path]) -> None:
        self._create, self._path = create, path
        self._lock = threading.Lock()
        self._ready: tuple[int, int] | None = None
        self._asked = -1  # the segment last asked for: once each, even if it failed
        self._closed_at: int | None = None  # the current segment when the log closed

    def ask(self, segment: int) -> None:
        """Create ``segment`` in a thread, unless it was asked for already."""
        with self._lock:
            if self._asked >= segment or self._closed_at is not None:
                return
            self._asked = segment
        threading.Thread(target=self._make, args=(segment,), name="lightbulb-wal-spare",
                         daemon=True).start()  # fmt: skip

    def take(self, segment: int) -> int | None:
        """The descriptor of ``segment`` if it is ready, else None (the caller creates it).

        A spare for another segment is closed, never deleted: the log may have
        created that file itself meanwhile, and written to it.
        """
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return None
        if ready[0] == segment:
            return ready[1]
        os.close(ready[1])
        return None

    def close(self, current: int) -> None:
        """No more spares; one ready beyond segment ``current`` (never written) is deleted."""
        with self._lock:
            self._closed_at = current
            ready, self._ready = self._ready, None
        if ready is not None:
            self._drop(ready, current)

    def _make(self, segment: int) -> None:
        try:
            fd = self._create(segment)
        except OSError:
            return  # no room for a file: the rotation tries again itself, and says why
        with self._lock:
            if self._closed_at is None:  # a stale one (the log went past it) is replaced
                stale, self._ready = self._ready, (segment, fd)
                if stale is None:
                    return
                segment, fd = stale
        self._drop((segment, fd), self._closed_at)

    def _drop(self, spare: tuple[int, int], current: int | None) -> None:
        segment, fd = spare
        os.close(fd)
        if current is not None and segment > current:
            self._path(segment).unlink(missing_ok=True)
