"""The Temporal server's clock as seen from ours, from the times the server stamps.

A check must not judge "the expected action did not run" by our clock alone: with
our clock 90 s ahead, an action due in 45 s would already look 45 s late. The
Temporal API has no "current time" call, but the server stamps times we can read
(a schedule action's ``actual_time``, a schedule's create and update times) and
drops an action time from ``future_action_times`` once its scheduler has passed
it. A stamp ``S`` first read when our clock says ``T`` proves that the server's
clock was at least ``S`` then, so ``server - ours >= S - T``: every such sample is
a lower bound of the offset, and the largest recent one is the tightest.

Rule: lateness is ``our now + offset lower bound - expected``. It is never
overestimated (a miss is never reported early, whatever our clock's error); it is
underestimated by the delay between the freshest stamp and the check that first
read it, at most about one check interval for a schedule that runs at least that
often. The assumption: both clocks run at the same rate between samples; only the
last ``SAMPLES`` samples count, so a step of our clock (NTP) is forgotten after
that many new stamps.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

SAMPLES = 16


class ServerClock:
    """Lower bound of ``server clock - our clock``, from server stamps as first read."""

    def __init__(self) -> None:
        self._offsets: deque[timedelta] = deque(maxlen=SAMPLES)

    def stamp(self, server_time: datetime, read_at: datetime) -> None:
        """A time the server stamped, first read when our clock said ``read_at``."""
        self._offsets.append(server_time - read_at)

    def offset(self) -> timedelta | None:
        """The tightest lower bound of ``server - ours``; None before any stamp."""
        return max(self._offsets) if self._offsets else None

    def server_now(self, now: datetime) -> datetime | None:
        """The latest time the server's clock surely reached when ours says ``now``."""
        offset = self.offset()
        return None if offset is None else now + offset


def read_stamps(
    clock: ServerClock, stamps: list[datetime], newest: datetime | None, now: datetime
) -> datetime | None:
    """Sample each stamp newer than ``newest`` (the newest already read); the new newest."""
    for stamp in sorted(stamps):
        if newest is None or stamp > newest:
            clock.stamp(stamp, now)
            newest = stamp
    return newest
