"""The embedded engine inserts at a lower CPU priority than the pushes it serves,
and at the normal one when told (the inserter: behind, or stopping).

A real chDB insert, made to last ~1 s by a column whose default sleeps per row; the
``nice`` of the process's threads is read from ``/proc`` while it runs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa

from server.storage.embedded import INSERT_NICE, EmbeddedStorage


def nices() -> set[int]:
    """The ``nice`` of every thread of this process (``/proc/self/task/*/stat``)."""
    out = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended
        out.add(int(stat.rsplit(")", 1)[1].split()[16]))
    return out


def seen_while_inserting(store: EmbeddedStorage) -> set[int]:
    """Threads' nice values seen from the insert's start until it returns."""
    data = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
    seen: set[int] = set()
    inserting = threading.Thread(target=store.insert_arrow, args=("slow", data))
    inserting.start()
    while inserting.is_alive():  # bounded by the insert itself (3 rows x 0.3 s)
        seen |= nices()
    inserting.join()
    return seen


def test_inserts_yield_the_cpu_until_told_not_to(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        store.execute("CREATE DATABASE IF NOT EXISTS monitor")
        store.execute("CREATE TABLE monitor.slow (n Int64, late UInt8 DEFAULT "
                      "sleepEachRow(0.3)) ENGINE = MergeTree ORDER BY n")  # fmt: skip
        assert INSERT_NICE > 0
        store.yield_cpu(True)
        assert INSERT_NICE in seen_while_inserting(store)
        store.yield_cpu(False)
        assert INSERT_NICE not in seen_while_inserting(store)
        assert store.query("SELECT count() AS n FROM monitor.slow")[0]["n"] == 6
    finally:
        store.close()
