"""A spool filling faster than ``insert_interval`` drains it is inserted at once past its
high-water mark, not left to answer pushes 503 until the cadence comes round.

Real chDB, a real log capped at 1 MiB, a real insert thread (``insert_interval``
an hour: only the high-water mark can start an insert). A client pushes 3 MiB,
and on a 503 waits until the writer would take a push again (its own verdict,
:meth:`Writer.spool_refuses`), as a client honouring ``Retry-After`` would.
Counts: every acknowledged row stored exactly once.
"""

from __future__ import annotations

from pathlib import Path

from server.inserter import DRAIN_AT
from server.spool_state import HIGH
from server.storage.embedded import EmbeddedStorage
from server.writer import Busy
from tests.conftest import wait_until
from tests.test_writer import make, row, stored

PAD = "x" * 2000  # ~20 KiB a push of 10 rows: ~150 pushes for 3 MiB


def test_a_spool_past_its_high_water_mark_is_inserted_before_insert_interval(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    assert DRAIN_AT < HIGH
    writer, flaky = make(store, tmp_path, max_bytes=2**20, insert_interval=3600,
                         flush_interval=0.05, batch_rows=10**6)  # fmt: skip
    writer.start()
    acked, refusals = 0, 0
    try:
        for push in range(150):
            rows = [row(push * 10 + i, PAD) for i in range(10)]
            while True:
                try:
                    writer.add_durable("service_status", rows)
                    break
                except Busy as busy:
                    assert busy.status == 503
                    refusals += 1
                    assert wait_until(lambda: writer.spool_refuses() is None, 30), (
                        f"the spool stays full ({writer.spool.wal.size} bytes, "
                        f"{flaky.inserts} inserts)"
                    )
            acked += 10
        assert flaky.inserts >= 2  # each time past the mark, not once an hour
        assert wait_until(lambda: writer.spool.wal.size < writer.spool.wal.max_bytes * HIGH)
    finally:
        writer.stop()
    assert stored(store) == list(range(acked)) and acked == 1500
    print(f"exploratory: {refusals} pushes answered 503, {flaky.inserts} inserts")


def test_a_spool_past_its_drain_mark_is_inserted_by_itself_before_any_push_is_refused(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    """Pushes stop just past ``DRAIN_AT`` of the cap, well short of the refusal band: no
    push was refused and nothing else is coming (no cadence for an hour, no full batch,
    no failed write), yet an insert starts and stores every row. Only the drain at
    ``DRAIN_AT`` starts it; without it the rows wait until the band refuses a push."""
    writer, flaky = make(store, tmp_path, max_bytes=2**20, insert_interval=3600,
                         flush_interval=0.05, batch_rows=10**6)  # fmt: skip
    cap = writer.spool.wal.max_bytes
    writer.start()
    acked = 0
    try:
        while writer.spool.wal.size < cap * DRAIN_AT:  # each push ~20 KiB: stops short of HIGH
            writer.add_durable("service_status", [row(acked + i, PAD) for i in range(10)])
            acked += 10
        assert writer.spool.wal.size < cap * HIGH and writer.spool_refuses() is None
        assert wait_until(lambda: flaky.inserts >= 1, 30), (
            f"no insert began with the spool at {writer.spool.wal.size} of {cap} bytes"
        )
        assert wait_until(lambda: writer.pending_rows() == 0, 30)
    finally:
        writer.stop()
    assert flaky.inserts == 1 and stored(store) == list(range(acked))
