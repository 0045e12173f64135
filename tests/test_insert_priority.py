"""The embedded engine inserts and merges at a lower CPU priority than the pushes it
serves (inserts at the normal one when told: the inserter behind, or stopping), and
none of its threads is left above or below the normal priority.

A real chDB insert, made to last ~1 s by a column whose default sleeps per row, and a
real mutation (run by the engine's merge threads, as merges are) made to last ~0.9 s
the same way; the ``nice`` of the process's threads is read from ``/proc`` meanwhile.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa

from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import INSERT_NICE, EmbeddedStorage
from server.storage.priority import MERGE_NICE
from server.tables import WRITTEN_TABLES
from server.writer import Writer
from tests.support.threads import nices, thread_at_nice, threads
from tests.test_writer import Flaky, row


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


class Recording(Flaky):
    """The real store, noting the priority each insert was asked to run at."""

    def __init__(self, inner: EmbeddedStorage) -> None:
        super().__init__(inner)
        self.nices: list[int] = []

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        self.nices.append(self.inner._insert_nice)
        return super().insert_arrow(table, data, dedup_token=dedup_token)


def test_the_inserter_yields_while_it_keeps_up_and_not_when_behind(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        recording = Recording(store)
        spool = Spool(tmp_path / "spool", 10**8)
        writer = Writer(recording, spool, columns=WRITTEN_TABLES, batch_rows=100)  # type: ignore[arg-type]
        writer.add_durable("service_status", [row(i) for i in range(50)])
        writer.flush()
        assert recording.nices == [INSERT_NICE]  # one batch waited: keeping up
        recording.down = True  # five batches pile up
        for start in range(50, 550, 100):  # five records of 100 rows
            writer.add_durable("service_status", [row(i) for i in range(start, start + 100)])
        writer.flush()
        recording.down, recording.nices = False, []
        writer.flush()
        # 500, 400, 300 rows waiting: behind, at the normal priority; 200, 100: yielding
        assert recording.nices == [0, 0, 0, INSERT_NICE, INSERT_NICE]
        writer.stop()
    finally:
        store.close()


def test_threads_are_read_once_and_a_new_one_left_at_the_insert_nice_is_set_back(
    tmp_path: Path,
) -> None:
    """After an insert only threads not seen before are read from ``/proc`` (one
    ``stat`` each); a new thread left at ``INSERT_NICE`` (as the engine's pool threads
    started during an insert are) is set back to 0, and every seen one stays at 0."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        store.execute("CREATE DATABASE IF NOT EXISTS monitor")
        store.execute("CREATE TABLE monitor.t (n Int64) ENGINE = MergeTree ORDER BY n")
        store.yield_cpu(True)
        data = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
        store.insert_arrow("t", data)
        unnice = store._unnice
        threads = len(os.listdir("/proc/self/task"))
        assert unnice.reads >= threads - 2  # the first insert read them all (some may end)
        before = unnice.reads
        for _ in range(5):
            store.insert_arrow("t", data)
        new_threads = unnice.reads - before
        assert new_threads <= 2 * 5, new_threads  # not ~threads per insert
        with thread_at_nice(INSERT_NICE) as tid:
            reads = unnice.reads
            store.insert_arrow("t", data)
            assert os.getpriority(os.PRIO_PROCESS, tid) == 0
            assert unnice.reads - reads <= 3  # that thread (and any the engine started)
            assert INSERT_NICE not in nices()
    finally:
        store.close()


def test_merges_yield_the_cpu(tmp_path: Path) -> None:
    """A mutation runs where merges run (the engine's MergeMutate threads, under the
    same server setting), at ``MERGE_NICE`` while it runs: never at 0, nor at the -20
    a merge thread could inherit from the engine's memory worker."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        store.execute("CREATE DATABASE IF NOT EXISTS monitor")
        store.execute("CREATE TABLE monitor.t (n Int64, s String) ENGINE = MergeTree ORDER BY n")
        store.execute("INSERT INTO monitor.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        # asynchronous, not validated by running it first: the sleep is the mutation's
        store.execute("ALTER TABLE monitor.t UPDATE s = toString(sleepEachRow(0.3)) WHERE 1 "
                      "SETTINGS allow_nondeterministic_mutations = 1, mutations_sync = 0, "
                      "validate_mutation_query = 0")  # fmt: skip
        waiting = "SELECT count() AS n FROM system.mutations WHERE NOT is_done AND "
        waiting += "latest_fail_reason = ''"
        seen: set[int] = set()
        running = True
        while running:  # bounded by the mutation itself (3 rows x 0.3 s)
            seen |= {nice for name, nice in threads() if name.startswith("MergeMutate")}
            running = bool(store.query(waiting)[0]["n"])
        assert MERGE_NICE > 0
        assert MERGE_NICE in seen, seen
        assert store.query("SELECT DISTINCT s FROM monitor.t") == [{"s": "0"}]
    finally:
        store.close()


def test_no_thread_is_left_above_the_normal_priority_after_an_insert(tmp_path: Path) -> None:
    """The engine raises its memory worker to -20 and pool threads started from it
    inherit that; after an insert (yielding or not) no thread of the process runs
    below 0, and a new one left there (as those are) is set back to 0."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        store.execute("CREATE DATABASE IF NOT EXISTS monitor")
        store.execute("CREATE TABLE monitor.t (n Int64) ENGINE = MergeTree ORDER BY n")
        data = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
        for _ in range(3):
            store.insert_arrow("t", data)
        assert min(nices()) >= 0, [t for t in threads() if t[1] < 0]
        with thread_at_nice(-20) as tid:
            store.yield_cpu(False)
            store.insert_arrow("t", data)
            assert os.getpriority(os.PRIO_PROCESS, tid) == 0
        assert store.query("SELECT count() AS n FROM monitor.t")[0]["n"] == 12
    finally:
        store.close()
