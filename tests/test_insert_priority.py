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

from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import INSERT_NICE, EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.writer import Writer
from tests.test_writer import Flaky, row


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
        ready, done = threading.Event(), threading.Event()
        tid: list[int] = []

        def left_at_insert_nice() -> None:
            tid.append(threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, tid[0], INSERT_NICE)
            ready.set()
            done.wait(30)

        worker = threading.Thread(target=left_at_insert_nice)
        worker.start()
        try:
            assert ready.wait(30)
            reads = unnice.reads
            store.insert_arrow("t", data)
            assert os.getpriority(os.PRIO_PROCESS, tid[0]) == 0
            assert unnice.reads - reads <= 3  # that thread (and any the engine started)
            assert INSERT_NICE not in nices()
        finally:
            done.set()
            worker.join()
    finally:
        store.close()
