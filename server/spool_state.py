"""Whether the spool takes acknowledged pushes: one state, apart from ClickHouse's, with
hysteresis so that ``/readyz`` does not flap on a nearly full disk.

A full spool is not ClickHouse being down: rows still go in (from memory, or
unmarked), pushes are refused with 503. So it has its own figure
(``lightbulb_spool_writable`` on ``/metrics``, ``"spool"`` in ``/readyz``) and
its own log lines.

**The rule** (:attr:`SpoolState.writable`, the one state ``/readyz``, ``/metrics``
and the log lines follow):

- a failed write makes the spool *not writable* at once (an ERROR names the
  directory and the fix; then a WARNING a minute with the count of failed writes);
- it is *writable* again only once writes have gone through, and none failed,
  for ``SETTLE`` s (then one INFO). A disk that fills and frees within seconds is
  one episode: not ready throughout, not sixty flips and lines;
- the log's size has its own band (:meth:`SpoolState.near_full`): past
  ``HIGH`` of ``scheduler.spool_max_bytes`` it is near full (pushes 503, not
  ready), and it is not again until it is below ``LOW``.

While not writable, a push is still tried whenever the filesystem has room (that
write is what ends the episode); it is refused outright only while there is none.
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path

from server.core.clock import Clock
from server.core.oserrors import FIXES, NO_SPACE
from server.core.repeats import Repeats

log = logging.getLogger("lightbulb.writer")
SETTLE = 10.0  # seconds of successful writes before the spool is said to take writes again
HIGH, LOW = 0.9, 0.75  # of spool_max_bytes: near full past HIGH, until below LOW again
FIX = f"{FIXES[errno.ENOSPC]} or set scheduler.spool_dir elsewhere"
WRITE_FIXES = {  # a spool write's own causes that are not a full disk (atk18: all got FIX)
    errno.ENOENT: "its directory was removed: put it back or restart the daemon (which makes "
    "it again)",
    errno.EACCES: "give the daemon's user write access to the spool's directory",
    errno.EROFS: "the spool's filesystem is read-only: remount it read-write or set "
    "scheduler.spool_dir elsewhere",
}
WRITE_FIXES[errno.EPERM] = WRITE_FIXES[errno.EACCES]


def fix_for(exc: BaseException) -> str:
    """The fix to name for a failed spool write: by its errno (:data:`WRITE_FIXES`, then
    :data:`server.core.oserrors.FIXES` but for a full disk's), else :data:`FIX`."""
    code = getattr(exc, "errno", None)
    if code in WRITE_FIXES:
        return WRITE_FIXES[code]
    return FIXES[code] if code in FIXES and code not in NO_SPACE else FIX


class SpoolState:
    """The spool's one state (:attr:`writable`), logged per episode (thread-safe;
    ``clock``: injectable; ``settle``: the seconds of the rule above)."""

    def __init__(self, directory: Path, clock: Clock | None = None, settle: float = SETTLE) -> None:
        self.directory = directory
        self.failures = 0  # writes that failed, ever
        self.last_error = ""
        self.last_fix = FIX
        self.settle = settle
        self._repeats = Repeats(clock=clock, settle=settle)
        self.clock = self._repeats.clock  # the writer's, for ClickHouse's state too
        self._lock = threading.Lock()
        self._near_full = False

    def failed(self, exc: BaseException) -> None:
        """A write to the spool failed (``exc``: why, e.g. ``No space left on device``)."""
        with self._lock:
            self.failures += 1
        unlogged = self._repeats.due()
        why = self.last_error = str(getattr(exc, "strerror", None) or exc)
        fix = self.last_fix = fix_for(exc)
        if unlogged == 0:
            log.error("cannot write the spool at %s: %s; check results are held in memory and "
                      "inserted, pushed logs are refused with 503 until it can be written: %s",
                      self.directory, why, fix)  # fmt: skip
        elif unlogged is not None:
            log.warning("the spool at %s still cannot be written: %s (%d more failed "
                        "writes since the last such line): %s",
                        self.directory, why, unlogged, fix)  # fmt: skip

    def ok(self) -> None:
        """A write to the spool went through."""
        failures = self._repeats.ok()
        if failures is not None:
            log.info("the spool at %s takes writes again (%d writes failed meanwhile)",
                     self.directory, failures)  # fmt: skip

    @property
    def writable(self) -> bool:
        """No failed write, or writes alone have gone through for ``settle`` s since the
        last one that failed (True before the first write): the settle clock of the
        episode that :attr:`_repeats` logs, so the state and its log lines are one."""
        return self._repeats.settled

    def near_full(self, size: int, max_bytes: int) -> bool:
        """The log's ``size`` is near ``max_bytes``: past ``HIGH`` of it, and since then not
        below ``LOW`` (bytes)."""
        with self._lock:
            if size > max_bytes * HIGH:
                self._near_full = True
            elif size < max_bytes * LOW:
                self._near_full = False
            return self._near_full

    def problem(self) -> str:
        """What is wrong and the fix, for ``/readyz`` ("" while it takes writes)."""
        if self.writable:
            return ""
        return (f"the spool at {self.directory} cannot be written ({self.last_error}): "
                f"{self.last_fix}")  # fmt: skip
