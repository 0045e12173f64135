"""A failure that repeats is logged once, then summed up; its end is said once, settled.

During a ClickHouse outage every dashboard request failed and logged a line: a
log the size of the traffic, the one cause drowned in it. On a filling disk the
spool flapped between "cannot write" and "takes writes again" several times a
second. :class:`Repeats` says when a repeating failure is due a line: its first
occurrence, then at most one every ``every`` s, each saying how many went
unlogged since the last; and, for callers that report successes too
(:meth:`Repeats.ok`), when the trouble is over: once, after successes alone
for ``settle`` s (hysteresis: a flapping condition is one episode, not many).
"""

from __future__ import annotations

import threading

from server.core.clock import Clock, SystemClock


class Repeats:
    """When a repeating failure, and its end, are due a log line (thread-safe; ``clock``:
    injectable).

    ``every``: seconds between lines while it repeats (a minute: a scrape interval's
    worth of requests summed into one line). ``settle``: seconds of successes only
    before :meth:`ok` says the episode is over (a failure meanwhile continues it)."""

    def __init__(
        self, every: float = 60.0, clock: Clock | None = None, settle: float = 0.0
    ) -> None:
        self.every = every
        self.settle = settle
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._logged_at: float | None = None  # None: no episode (nothing failing)
        self._unlogged = 0
        self._failures = 0  # in this episode
        self._ok_since: float | None = None  # successes only since then (within an episode)

    @property
    def failing(self) -> bool:
        """An episode is open: it failed, and :meth:`ok` has not said it is over."""
        return self._logged_at is not None

    @property
    def settled(self) -> bool:
        """Nothing failing, or successes alone for ``settle`` s since the last failure (what
        the next :meth:`ok` would end the episode on; read-only: the episode stays open
        until that call says so)."""
        with self._lock:
            if self._logged_at is None:
                return True
            return (
                self._ok_since is not None
                and self.clock.monotonic() - self._ok_since >= self.settle
            )

    def due(self) -> int | None:
        """One more occurrence: None when it is not to be logged (counted instead), else
        how many went unlogged before it since the last line (0 at an episode's start)."""
        now = self.clock.monotonic()
        with self._lock:
            self._ok_since = None
            self._failures += 1
            if self._logged_at is not None and now - self._logged_at < self.every:
                self._unlogged += 1
                return None
            unlogged, self._unlogged, self._logged_at = self._unlogged, 0, now
            return unlogged

    def ok(self) -> int | None:
        """A success: the episode's failures when it is now over (successes alone for
        ``settle`` s), to be said once; None otherwise (nothing failing, or not settled)."""
        now = self.clock.monotonic()
        with self._lock:
            if self._logged_at is None:
                return None
            if self._ok_since is None:
                self._ok_since = now
            if now - self._ok_since < self.settle:
                return None
            failures = self._failures
            self._logged_at, self._ok_since, self._unlogged, self._failures = None, None, 0, 0
            return failures
