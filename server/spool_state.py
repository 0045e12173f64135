"""Whether the spool takes writes: one state, apart from ClickHouse's, said without flapping.

A full spool is not ClickHouse being down: rows still go in (from memory, or
unmarked), pushes are refused with 503. So it has its own figure
(``lightbulb_spool_writable`` on ``/metrics``, ``"spool"`` in ``/readyz``) and
its own log lines: one ERROR when it starts (naming the directory and the fix),
a WARNING a minute while it lasts (with the count of failed writes), one INFO
once it has taken writes for ``SETTLE`` s (a filling disk that frees and fills
again within seconds is one episode, not sixty lines).
"""

from __future__ import annotations

import logging
from pathlib import Path

from server.core.clock import Clock
from server.core.repeats import Repeats

log = logging.getLogger("lightbulb.writer")
SETTLE = 10.0  # seconds of successful writes before the spool is said to take writes again
FIX = "free bytes and inodes on its filesystem (df -h, df -i) or set scheduler.spool_dir elsewhere"


class SpoolState:
    """The outcome of the spool's writes (:attr:`writable`: the last one), logged per
    episode (thread-safe through :class:`Repeats`; ``clock``: injectable)."""

    def __init__(self, directory: Path, clock: Clock | None = None, settle: float = SETTLE) -> None:
        self.directory = directory
        self.writable = True  # the last write went through (True before the first)
        self.failures = 0  # writes that failed, ever
        self.last_error = ""
        self._repeats = Repeats(clock=clock, settle=settle)
        self.clock = self._repeats.clock  # the writer's, for ClickHouse's state too

    def failed(self, exc: BaseException) -> None:
        """A write to the spool failed (``exc``: why, e.g. ``No space left on device``)."""
        self.writable = False
        self.failures += 1
        unlogged = self._repeats.due()
        why = self.last_error = str(getattr(exc, "strerror", None) or exc)
        if unlogged == 0:
            log.error("cannot write the spool at %s: %s; check results are held in memory and "
                      "inserted, pushed logs are refused with 503 until it has room: %s",
                      self.directory, why, FIX)  # fmt: skip
        elif unlogged is not None:
            log.warning("the spool at %s still cannot be written: %s (%d more failed "
                        "writes since the last such line): %s",
                        self.directory, why, unlogged, FIX)  # fmt: skip

    def ok(self) -> None:
        """A write to the spool went through."""
        self.writable = True
        failures = self._repeats.ok()
        if failures is not None:
            log.info("the spool at %s takes writes again (%d writes failed meanwhile)",
                     self.directory, failures)  # fmt: skip

    def problem(self) -> str:
        """What is wrong and the fix, for ``/readyz`` ("" while it takes writes)."""
        if self.writable:
            return ""
        return f"the spool at {self.directory} cannot be written ({self.last_error}): {FIX}"

    @property
    def failing(self) -> bool:
        """An episode is open (it failed and has not taken writes for ``settle`` s)."""
        return self._repeats.failing
