"""Whether this process has file descriptors to spare before it enters the engine.

chDB (ClickHouse in our process) opens files, pipes and eventfds inside a query
(an insert writes one part: two files per column, plus checksums, the columns'
list, a temporary directory). When ``open`` fails with ``EMFILE`` in the middle of
that, the query does not always come back: a shortage of a few seconds wedged the
writer for good (atk12d F4). So the daemon's own engine work (insert rounds,
periodic jobs) starts only with :data:`MARGIN` descriptors to spare, and waits a
round otherwise. It cannot shield a query already under way from a limit lowered
meanwhile; the stop path bounds that case (:mod:`server.daemon`).
"""

from __future__ import annotations

import os
import resource

#: descriptors an engine call may open at once: one wide part of our widest table
#: (~20 columns: 2 files each, plus ~6 per part), with room for a concurrent merge's
#: reads, the spool's segment and spare, and a dashboard request's socket
MARGIN = 64


def headroom() -> int | None:
    """Descriptors this process may still open (soft ``RLIMIT_NOFILE`` less those open,
    counted in ``/proc/self/fd``); 0 when not even that directory opens (``EMFILE``);
    None when unknown (no ``/proc``, or no limit)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        count = len(os.listdir("/proc/self/fd")) - 1  # less the one listing it
    except FileNotFoundError:
        return None
    except OSError:  # EMFILE, ENFILE, ENOMEM: short by any measure
        return 0
    return max(soft - count, 0)


def short(margin: int = MARGIN) -> str | None:
    """Why the engine must not be entered now ("N of M descriptors free ..."), or None."""
    free = headroom()
    if free is None or free >= margin:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (f"{free} of the {soft} file descriptors the daemon may open are free, fewer than "
            f"the {margin} an insert may need: raise the open-files limit (ulimit -n, "
            "systemd LimitNOFILE=) or close what holds them")  # fmt: skip
