"""Durability every flush_interval, inserts every insert_interval; inserts without pandas.

Real chDB and a real write-ahead log; ``Flaky`` (from test_writer) only counts
the inserts that reach the real store.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.writer import Writer
from tests.conftest import wait_until
from tests.test_writer import Flaky, make, row, stored

REPO = Path(__file__).resolve().parents[1]


def test_rows_are_on_disk_every_flush_but_inserted_only_every_insert_interval(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, flaky = make(store, tmp_path, flush_interval=0.05, insert_interval=600)
    writer.start()
    try:
        # ten commits by the WAL thread, one row each: at least ten flush_intervals
        for i in range(10):
            writer.add("service_status", row(i))
            assert wait_until(lambda n=i + 1: writer.inserter.pending_rows == n)  # type: ignore[misc]
        writer.spool.wal.sync()
        # ... and nothing was inserted: that waits for insert_interval
        assert flaky.inserts == 0 and stored(store) == []
        # a kill -9 now loses nothing: the next writer finds the rows in the log
        reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
        assert reborn.pending_rows() == 10
    finally:
        writer._stop.set()
        writer.inserter.loop.stopping.set()


def test_inserts_follow_insert_interval_without_a_flush(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, flaky = make(store, tmp_path, flush_interval=0.05, insert_interval=0.2)
    writer.start()
    try:
        for i in range(5):
            writer.add("service_status", row(i))
        assert wait_until(lambda: stored(store) == list(range(5)))
        assert flaky.inserts == 1  # one insert for the table, not one per flush
    finally:
        writer.stop()


def test_insert_interval_is_never_shorter_than_flush_interval(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, _ = make(store, tmp_path, flush_interval=2.0, insert_interval=0.5)
    assert writer.insert_interval == 2.0
    default, _ = make(store, tmp_path / "other", flush_interval=0.3)
    assert default.insert_interval == 0.3  # not given: the old cadence


class Gated(Flaky):
    """The real store; its first insert waits, mid-insert, until the test lets it go."""

    def __init__(self, inner: EmbeddedStorage) -> None:
        super().__init__(inner)
        self.sizes: list[int] = []
        self.inside = threading.Event()
        self.go = threading.Event()

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        self.sizes.append(data.num_rows)
        self.inside.set()
        assert self.go.wait(30)
        return super().insert_arrow(table, data, dedup_token=dedup_token)


def test_rows_arriving_during_an_insert_wait_for_a_full_batch(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    # A round used to go on inserting whatever had arrived during its last insert:
    # under a steady stream that settled at a few thousand rows an insert, each a
    # part the engine merged again and again (half of the CPU at 30k logs/s).
    writer, _ = make(store, tmp_path, batch_rows=1000, flush_interval=0.05, insert_interval=600)
    gated = Gated(store)
    writer.inserter.storage = gated
    writer.start()

    def push(first: int, records: int) -> None:
        for n in range(first, first + records):
            writer.durable({"service_status": [row(n * 100 + i) for i in range(100)]})

    try:
        push(0, 10)  # 1,000 rows: a full batch wakes the inserter at once
        assert gated.inside.wait(30)
        push(10, 3)  # arrive while that insert runs
        gated.go.set()
        assert wait_until(lambda: len(stored(store)) == 1000)
        push(13, 7)  # with the 3 before: the next full batch
        assert wait_until(lambda: len(stored(store)) == 2000)
        assert gated.sizes == [1000, 1000]  # the 300 waited: no small insert
    finally:
        gated.go.set()
        writer.stop()
    assert stored(store) == list(range(2000))


def test_a_table_without_a_full_batch_is_inserted_every_insert_interval(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    # Full batches of one table must not starve another table's few rows.
    writer, flaky = make(store, tmp_path, batch_rows=100, flush_interval=0.05,
                         insert_interval=0.3)  # fmt: skip
    writer.start()
    try:
        writer.add("service_status", row(0))
        for n in range(1, 4):
            writer.durable({"log_dlq": [_dead_letter(n * 100 + i) for i in range(100)]})
        assert wait_until(lambda: stored(store) == [0])
    finally:
        writer.stop()
    assert flaky.inserts == 4  # three full log_dlq batches and the status row


def _dead_letter(i: int) -> tuple[Any, ...]:
    from tests.test_writer import T0

    return (T0, "127.0.0.1", "ndjson", "not JSON", f"record {i}")


def test_the_write_path_stores_rows_without_importing_pandas(tmp_path: Path) -> None:
    # pandas costs ~50 MB of RSS; neither pyarrow's conversions nor the embedded
    # insert (Arrow IPC through file()) may pull it in.
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from server.schema import Target, apply_schema
        from server.spool import Spool
        from server.storage.embedded import EmbeddedStorage
        from server.tables import WRITTEN_TABLES
        from server.writer import Writer
        from tests.test_writer import row

        store = EmbeddedStorage(Path({str(tmp_path)!r}) / "db", "monitor")
        apply_schema(store, Target("monitor"))
        writer = Writer(store, Spool(Path({str(tmp_path)!r}) / "spool", 10**8),
                        columns=WRITTEN_TABLES)
        for i in range(3):
            writer.add("service_status", row(i, "caf\\u00e9 'quoted'"))
        writer.flush()
        n = store.query("SELECT count() AS n FROM monitor.service_status "
                        "WHERE message = {{m:String}}", {{"m": "caf\\u00e9 'quoted'"}})[0]["n"]
        print(n, "pandas" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3", "False"]
