"""Checks over the burn-rate windows of the services an ``slo_burn`` rule watches.

The alert engine asks on every result and every tick (1 s); storage is read at
most once per :data:`REFRESH` of the engine's clock, for every watched service
and window in one go (:func:`server.analytics.uptime.counts`: exact counts, raw
checks at the partial hours), and answered from that read in between. The
windows are as short as 5 minutes, so 30 s of staleness delays a page by at most
that; a read of a few services costs ~10-50 ms on a loaded 2-core machine.

When storage does not answer, the last read stays: a ClickHouse blip neither
fires nor resolves a burn alert. Counts come from storage rather than the
engine's memory so that a restart loses nothing (a 6-hour window is full at
once) and the alert and the pages count the same checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from server.analytics.slo import Counts
from server.analytics.uptime import counts
from server.storage import Storage, StorageError

log = logging.getLogger(__name__)
REFRESH = timedelta(seconds=30)

Windows = dict[timedelta, Counts]


class BurnCounts:
    """``counts(service_id, windows, now)`` -> checks in each window ending about ``now``.

    Thread-safe. ``refresh`` is how old (by the caller's ``now``) a read may be.
    """

    def __init__(self, storage: Storage, refresh: timedelta = REFRESH) -> None:
        self.storage = storage
        self.refresh = refresh
        self._lock = threading.Lock()
        self._wanted: dict[str, set[timedelta]] = {}
        self._found: dict[str, Windows] = {}
        self._read_at: datetime | None = None
        self.reads = 0  # storage reads made (tests and the benchmark count them)

    def counts(
        self, service_id: str, windows: Iterable[timedelta], now: datetime
    ) -> Windows | None:
        """Checks per window (each ending at the last read, at most ``refresh`` before
        ``now``); None while storage has never answered for this service and window."""
        needed = set(windows)
        with self._lock:
            wanted = self._wanted.setdefault(service_id, set())
            new = not needed <= wanted
            wanted |= needed
            if self._read_at is None or abs(now - self._read_at) >= self.refresh:
                self._read(list(self._wanted), now)
            elif new:  # a rule added since the last read: this service now, the rest later
                self._read([service_id], self._read_at)
            found = self._found.get(service_id)
        if found is None or not needed <= set(found):
            return None
        return {w: found[w] for w in needed}

    def _read(self, ids: list[str], end: datetime) -> None:
        """Counts ending at ``end`` for ``ids``; on failure the last read stays, and the
        next try waits ``refresh`` (a hung ClickHouse costs a timeout per refresh, not
        per tick)."""
        if len(ids) == len(self._wanted):
            self._read_at = end
        spans = sorted(set().union(*(self._wanted[sid] for sid in ids)))
        try:
            read = counts(self.storage, ids, [(end - w, end) for w in spans])
        except StorageError as exc:
            log.warning("slo_burn: checks not read, keeping the last read: %s", exc)
            return
        self.reads += 1
        for sid in ids:
            self._found[sid] = dict(zip(spans, read[sid], strict=True))
