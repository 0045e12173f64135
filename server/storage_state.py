"""What the inserter knows of ClickHouse: its state, and the lines that say it.

``ok``, ``unreachable``, ``disk full`` (ClickHouse's disk, not the spool's: that
is :mod:`server.spool_state`), ``descriptors short`` (the daemon's own open-files
limit nearly reached: the engine is not entered, :mod:`server.core.descriptors`) or
``refused`` (reachable, but it refused to prepare storage: an old version, a missing
right). Each change is logged once (an outage is one warning, not one per second),
a state that lasts is summed up once a minute with the count of failed attempts
(:class:`Repeats`, the same rule as the spool's and the dashboard's), and the
recovery once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from server.core.clock import Clock
from server.core.repeats import Repeats
from server.storage.base import DescriptorsShort, DiskFull

log = logging.getLogger("lightbulb.writer")


class StorageState:
    """ClickHouse's state as the last insert (or preparation) found it.

    ``spool``: the spool's directory, named in the lines (rows wait there);
    ``waiting``: rows not yet stored, for the recovery line."""

    def __init__(self, spool: Path, waiting: Callable[[], int], clock: Clock | None = None) -> None:
        self.spool = spool
        self.waiting = waiting
        self.state = "ok"
        self._repeats = Repeats(clock=clock)

    @property
    def answering(self) -> bool:
        """ClickHouse answered the last attempt, even with a refusal: a server that refuses
        our statements is there (``refused``), not down."""
        return self.state in ("ok", "refused", "disk full", "descriptors short")

    def is_(self, state: str, exc: Exception | str | None = None) -> None:
        """The last attempt's outcome; ``unreachable`` with a :class:`DiskFull` is ``disk
        full``, named as such ("unavailable" sent operators looking for a server that was
        there all along)."""
        if state == "unreachable" and isinstance(exc, DiskFull):
            state = "disk full"
        elif state == "unreachable" and isinstance(exc, DescriptorsShort):
            state = "descriptors short"
        previous, self.state = self.state, state
        if state == "ok":
            if self._repeats.ok() is None or previous == "ok":
                return
            if previous == "descriptors short":
                log.info("file descriptors to spare again: inserts go on; %d rows waiting",
                         self.waiting())  # fmt: skip
            else:
                log.info("ClickHouse takes writes again; %d rows waiting", self.waiting())
            return
        unlogged = self._repeats.due()
        if state == previous:
            if unlogged:
                log.warning("ClickHouse still %s: %s (%d more failed attempts since the last "
                            "such line)", state, exc, unlogged)  # fmt: skip
        elif state == "disk full":
            log.warning("ClickHouse's disk is full; keeping rows in the spool at %s and "
                        "retrying: %s", self.spool, exc)  # fmt: skip
        elif state == "descriptors short":
            log.warning("inserts wait: %s; %d rows keep in the spool at %s and the round is "
                        "retried", exc, self.waiting(), self.spool)  # fmt: skip
        elif state == "unreachable":
            log.warning("ClickHouse unavailable, keeping rows in the spool at %s: %s",
                        self.spool, exc)  # fmt: skip
        else:
            log.error("ClickHouse is reachable but refused to prepare storage: %s", exc)
