"""The insert thread: when rounds run, and how it stops within a bound.

Everything waiting goes in every ``insert_interval``; in between, a table with a
full batch (``batch_rows``) is inserted at once, but only full batches (fewer,
larger inserts: each costs the engine a part to merge). A spool past
:data:`server.inserter.DRAIN_AT` of ``spool_max_bytes`` is drained at once
(:meth:`InsertLoop.wake` with ``drain``): waiting for the cadence there would
answer pushes 503 meanwhile.

:meth:`InsertLoop.stop` gives the thread ``timeout`` s to insert what waits; past
it, no further insert starts (one under way is not cut short: the storage's
``close`` waits for it), so nothing writes to the log once the writer has closed
it, and a WARNING says how many rows wait for the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.inserter import Inserter

log = logging.getLogger("lightbulb.writer")
ABANDON_WAIT = 0.5  # s stop() waits past its timeout for the thread to see its time is up


class InsertLoop:
    """Runs ``inserter``'s rounds on a thread of its own (thread-safe ``wake``/``stop``)."""

    def __init__(self, inserter: Inserter) -> None:
        self.inserter = inserter
        self.stopping = threading.Event()
        self._deadline: float | None = None  # monotonic s: stop()'s, once called
        self._wake = threading.Event()
        self._drain = threading.Event()  # the next round inserts everything (spool near full)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lightbulb-writer", daemon=True)
        self._thread.start()

    def wake(self, *, drain: bool = False) -> None:
        """Start an insert round now: of full batches only, or (``drain``) of everything."""
        if drain:
            self._drain.set()
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """Insert what ``timeout`` s allow (in this thread if the loop never started), then
        start no further insert; a WARNING if rows are left for the next start."""
        inserter = self.inserter
        self.stopping.set()
        self._wake.set()
        self._deadline = time.monotonic() + timeout
        if self._thread is None:
            inserter.insert_due()
        else:
            self._thread.join(timeout)
            self._thread.join(ABANDON_WAIT)  # past the deadline: no further batch starts
        if self._thread is not None and self._thread.is_alive():
            log.warning("ClickHouse did not take everything in %.1f s and an insert is still "
                        "under way; %d rows stay in the spool for the next start (the one "
                        "under way is checked against ClickHouse then)",
                        timeout, inserter.pending_rows)  # fmt: skip
        elif inserter.pending_rows and inserter.state == "ok":  # else its outage said why
            log.warning("ClickHouse did not take everything in %.1f s; %d rows stay in the "
                        "spool for the next start", timeout, inserter.pending_rows)  # fmt: skip

    def out_of_time(self) -> bool:
        """Stopping, and past the deadline: start no further insert."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _loop(self) -> None:
        writer = self.inserter.writer
        every = writer.insert_interval
        next_all = time.monotonic() + every
        while not self.stopping.is_set():
            self._wake.wait(max(next_all - time.monotonic(), 0.0))
            self._wake.clear()
            if self._drain.is_set() or time.monotonic() >= next_all:
                self._drain.clear()
                next_all = time.monotonic() + every
                self._round(full_only=False)
            else:
                self._round(full_only=True)
        writer.commit()
        self._round(full_only=False)

    def _round(self, full_only: bool) -> None:
        try:
            self.inserter.insert_due(full_only=full_only)
        except Exception:  # the writer must outlive any single failure
            log.exception("insert round failed")
