"""How many actions a schedule missed or skipped over its last N expected runs.

A schedule whose runs overlap skips some of them in a pattern: a 25-second
workflow every 10 seconds runs, skips, skips, runs. Judged "since the previous
check", a check every 5 seconds saw a skip on one check and none on the next, and
the verdict flipped with the phase of the check against the cadence. So the
thresholds are judged over a window of ``window_runs`` expected runs (the
schedule's cadence, read from its next action times, times N): the counts are the
server's cumulative counters now minus what they were at the newest check at or
before the window's start. A window shorter than the time since the previous check
is widened to it (a check never sees less than one whole interval between checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

MAX_TALLIES = 1000  # checks remembered per schedule (a window over more is cut to these)


@dataclass(frozen=True)
class Tally:
    """The server's cumulative counters as one check read them (``at``: our clock)."""

    at: datetime
    missed: int
    skipped: int


def cadence(future: list[datetime]) -> timedelta | None:
    """The median gap between the next action times; None with fewer than two."""
    gaps = sorted(b - a for a, b in pairwise(future) if b > a)
    return gaps[len(gaps) // 2] if gaps else None


def over_window(
    tallies: list[Tally], now: Tally, window: timedelta
) -> tuple[int, int, list[Tally]]:
    """(missed, skipped) in the ``window`` before ``now``, and the tallies to keep.

    ``tallies`` are the earlier checks' (oldest first). The base is the newest one
    at or before ``now.at - window`` (the oldest when none is that old: the window
    is not filled yet; ``now`` itself on the first check, giving 0 and 0). A counter
    that went down (a recreated schedule) counts from 0.
    """
    start = now.at - window
    older = [t for t in tallies if t.at <= start]
    base = older[-1] if older else (tallies[0] if tallies else now)
    missed = now.missed - base.missed if now.missed >= base.missed else now.missed
    skipped = now.skipped - base.skipped if now.skipped >= base.skipped else now.skipped
    kept = [t for t in tallies if t.at >= base.at] + [now]
    return missed, skipped, kept[-MAX_TALLIES:]
