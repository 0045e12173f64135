"""CPU priorities of the embedded engine's threads: its work yields to the pushes it serves.

The engine runs in the daemon's process, on the cores that answer pushes, so what it
does in the background must not come first:

- an insert runs at :data:`INSERT_NICE` while the inserter keeps up (ClickHouse's
  ``os_thread_priority``; :meth:`server.storage.embedded.EmbeddedStorage.yield_cpu`);
- merges and mutations run at :data:`MERGE_NICE` (the server setting
  ``os_threads_nice_value_merge_mutate``, :data:`ENGINE_SETTING`). Left at its default
  (0: the engine sets nothing) a merge ran at whatever its thread had been started
  with: 0, or -20 (in 5 of 9 starts here, see :class:`Unnice`);
- :class:`Unnice` sets back to 0 the threads left at a priority nobody chose.

The engine applies these only with ``CAP_SYS_NICE`` (root, as in the benchmarks), since
it must set its threads back afterwards; without it everything runs at 0.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: ``nice`` of the engine's threads while they insert a batch: a 100k-row insert took
#: 0.3-1 s of CPU while requests waited for it (benchmarks/ingest.py --trace); at 10
#: the requests' threads come first and the insert takes the CPU they leave.
INSERT_NICE = 10
#: ``nice`` of a merge (or mutation) while it runs. At 55k records/s merges took
#: ~1.3 s of CPU in 15 s, in bursts of several hundred ms on one of the two cores,
#: while the ingest workers waited for CPU. Yielding like an insert, a merge still
#: gets every idle cycle and ~10% of a contended core (weight 110 against 1024),
#: about what merges need at that rate (~0.1 core).
MERGE_NICE = INSERT_NICE
#: the engine's connection-string setting for :data:`MERGE_NICE`
ENGINE_SETTING = f"os_threads_nice_value_merge_mutate={MERGE_NICE}"


class Unnice:
    """Sets threads of this process left above or below the normal priority back to 0.

    - Left at the insert's ``nice``: the engine resets the threads of a query with
      ``os_thread_priority``, but not the pool threads they start meanwhile (they
      inherit it), and any query may run on those later.
    - Left below 0: the engine raises its memory worker to -20, and a pool thread
      started from it inherits that: one more thread at -20 in every start seen here
      (6 of 6; a Move, MergeMutate or background-schedule one). A merge on such a
      thread takes a core ahead of every push.

    Called with no insert running (under the storage's mutex). Only threads it has not
    seen are read: a thread seen at 0 stays there (the engine resets what it raises),
    so a call costs one listing of ``/proc/self/task`` plus a ``stat`` per new thread,
    not one per thread (~60 with the engine's pools).
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()  # thread ids read (and set to 0 if they were not)
        self.reads = 0  # ``stat`` files read, ever (tests count them)

    def __call__(self, raised: int) -> None:
        """Set unseen threads at ``raised`` (the insert's nice; 0: none) or below 0 to 0."""
        tasks = Path("/proc/self/task")
        try:
            now = set(os.listdir(tasks))
        except OSError:
            return
        for tid in now - self.seen:
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.reads += 1
                stat = (tasks / tid / "stat").read_text()
                nice = int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice
                if nice < 0 or (raised and nice == raised):
                    os.setpriority(os.PRIO_PROCESS, int(tid), 0)
        self.seen = now  # ended threads forgotten (a thread id can be used again)
