"""A failure that repeats on every request is logged once, then summed up.

During a ClickHouse outage every dashboard request failed and logged a line: a
log the size of the traffic, the one cause drowned in it. :class:`Repeats` says
when a repeating failure is due a line: its first occurrence, then at most one a
``every`` s, each saying how many went unlogged since the last.
"""

from __future__ import annotations

import threading

from server.core.clock import Clock, SystemClock


class Repeats:
    """When a repeating failure is due a log line (thread-safe; ``clock``: injectable).

    ``every``: seconds between lines while it repeats (a minute: a scrape interval's
    worth of requests summed into one line)."""

    def __init__(self, every: float = 60.0, clock: Clock | None = None) -> None:
        self.every = every
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._logged_at: float | None = None
        self._unlogged = 0

    def due(self) -> int | None:
        """One more occurrence: None when it is not to be logged (counted instead), else
        how many went unlogged before it since the last line (0 the first time)."""
        now = self.clock.monotonic()
        with self._lock:
            if self._logged_at is not None and now - self._logged_at < self.every:
                self._unlogged += 1
                return None
            unlogged, self._unlogged, self._logged_at = self._unlogged, 0, now
            return unlogged
