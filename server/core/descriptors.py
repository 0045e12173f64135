"""Whether this process has file descriptors to spare before it enters the engine.

chDB (ClickHouse in our process) opens files, pipes and eventfds inside a query
(an insert writes one part: two files per column, plus checksums, the columns'
list, a temporary directory). When ``open`` fails with ``EMFILE`` in the middle of
that, the query does not always come back: a shortage of a few seconds wedged the
writer for good (atk12d F4). So the embedded storage enters chDB only with
:data:`MARGIN` descriptors to spare and raises ``DescriptorsShort`` otherwise (the
inserter's "descriptors short" state: the round waits for the next). It cannot
shield a query already under way from a limit lowered meanwhile; the stop path
bounds that case (:mod:`server.daemon`).

The check runs before every statement the embedded storage runs (one place, where
chDB is entered: a remote ClickHouse has no such wedge), dashboard reads included, so
it must cost little: listing ``/proc/self/fd`` took ~25 µs at 26 descriptors open and
~460 µs at 1000, under the storage's mutex. The count is therefore kept for
:data:`RECOUNT` s while the headroom is wide (:data:`WIDE` margins); the limit itself
is read every time (a lowered limit is seen at once), and a narrow headroom is
counted afresh every time.
"""

from __future__ import annotations

import os
import resource
import time

#: descriptors an engine call may open at once: one wide part of our widest table
#: (~20 columns: 2 files each, plus ~6 per part), with room for a concurrent merge's
#: reads, the spool's segment and spare, and a dashboard request's socket
MARGIN = 64
RECOUNT = 1.0  # s a count of open descriptors is reused while the headroom is wide
WIDE = 2  # margins of headroom that make it wide: opening MARGIN more within RECOUNT s
# still leaves MARGIN free
#: the soft open-files limit a daemon raises itself to (within the hard one): Go's runtime
#: raises it to the hard limit at start (go.dev/issue/46279); systemd leaves the soft one
#: at 1,024 for select()'s sake and asks programs that need more to raise it themselves
#: (systemd.exec(5), LimitNOFILE=). We never call select(): poll() only (server.web.serve)
RAISE_TO = 65_536
# (monotonic s, descriptors open) of the last count, if any (racing threads: a recount)
_counted: list[tuple[float, int] | None] = [None]


def headroom(margin: int = MARGIN) -> int | None:
    """Descriptors this process may still open (soft ``RLIMIT_NOFILE`` less those open,
    counted in ``/proc/self/fd``, or a count under :data:`RECOUNT` s old while that leaves
    ``WIDE * margin`` free); 0 when not even that directory opens (``EMFILE``); None when
    unknown (no ``/proc``, or no limit)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    now = time.monotonic()
    last = _counted[0]
    if last is not None and now - last[0] < RECOUNT and soft - last[1] >= WIDE * margin:
        return soft - last[1]
    try:
        count = len(os.listdir("/proc/self/fd")) - 1  # less the one listing it
    except FileNotFoundError:
        return None
    except OSError:  # EMFILE, ENFILE, ENOMEM: short by any measure
        _counted[0] = None
        return 0
    _counted[0] = (now, count)
    return max(soft - count, 0)


def raise_limit(target: int = RAISE_TO) -> tuple[int, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to ``target`` (at most the hard limit;
    never lowered): chDB's files, the spool's and the dashboard's connections then rarely
    meet a limit in the middle of an engine call (which can wedge it, see above).
    Returns (soft limit before, soft limit now); the limit is left as it was when the
    kernel refuses (an unprivileged process cannot pass the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (OSError, ValueError):
            return soft, soft
        return soft, want
    return soft, soft


def connections_within(limit: int, wanted: int) -> int:
    """How many client connections a server may hold under a soft open-files ``limit``:
    ``wanted``, or fewer so that half of what is left after four :data:`MARGIN`s stays
    for the engine and the spool (at least 32)."""
    if limit == resource.RLIM_INFINITY:
        return wanted
    return min(wanted, max(32, (limit - 4 * MARGIN) // 2))


def ran_out() -> None:
    """An ``open`` somewhere failed with ``EMFILE``/``ENFILE``: the next check counts afresh."""
    _counted[0] = None


def short(margin: int = MARGIN) -> str | None:
    """Why the engine must not be entered now ("N of M descriptors free ..."), or None."""
    free = headroom(margin)
    if free is None or free >= margin:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (f"{free} of the {soft} file descriptors the daemon may open are free, fewer than "
            f"the {margin} an insert may need: raise the open-files limit (ulimit -n, "
            "systemd LimitNOFILE=) or close what holds them")  # fmt: skip
