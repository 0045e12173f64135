"""The writer on real chDB: write-ahead log, batches, exactly-once replay, refusals.

The only stand-in is ``Flaky``: it wraps the real store and answers inserts
with StorageUnavailable while ``down`` is set, which is how an unreachable
ClickHouse looks to the writer. Refused content is real: a CHECK constraint
added to the real table makes the server refuse rows.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from server.recorder import STATUS_COLUMNS
from server.schema import Target, apply_schema
from server.spool import Batch, Spool
from server.storage import DiskFull, StorageUnavailable
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.wal_repair import PAGE
from server.writer import Writer

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class Flaky:
    """The real store, unreachable while ``down`` is true."""

    def __init__(self, inner: EmbeddedStorage) -> None:
        self.inner = inner
        self.database = inner.database
        self.kind = inner.kind
        self.down = False
        self.full: DiskFull | None = None  # raised instead while set
        self.inserts = 0

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        if self.full is not None:
            raise self.full
        if self.down:
            raise StorageUnavailable("ClickHouse at test:9000 is unreachable: connection refused")
        self.inserts += 1
        return self.inner.insert_arrow(table, data, dedup_token=dedup_token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def row(i: int, message: str = "") -> tuple[Any, ...]:
    return ("svc", T0 + timedelta(seconds=i), 0, message or f"check {i}", "http", "web", "{}", i,
            None, None)  # fmt: skip


def stored(store: EmbeddedStorage) -> list[int]:
    return [
        r["response_time_ms"]
        for r in store.query(
            "SELECT response_time_ms FROM monitor.service_status ORDER BY response_time_ms"
        )
    ]


def make(store: EmbeddedStorage, tmp_path: Path, **kwargs: Any) -> tuple[Writer, Flaky]:
    apply_schema(store, Target("monitor"))
    flaky = Flaky(store)
    spool = Spool(tmp_path / "spool", kwargs.pop("max_bytes", 10**8))
    return Writer(flaky, spool, columns=WRITTEN_TABLES, **kwargs), flaky  # type: ignore[arg-type]


def test_rows_are_written_in_one_insert_per_table(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path)
    for i in range(250):
        writer.add("service_status", row(i))
    writer.flush()
    assert flaky.inserts == 1 and stored(store) == list(range(250))


def test_batch_rows_caps_one_insert(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path, batch_rows=100)
    for i in range(250):
        writer.add("service_status", row(i))
        if i % 50 == 49:
            writer.commit()  # five records of 50 rows
    writer.flush()
    assert flaky.inserts == 3 and stored(store) == list(range(250))


def test_outage_keeps_rows_in_the_log_then_stores_them_once(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, flaky = make(store, tmp_path)
    flaky.down = True
    for start in (0, 10, 20):
        for i in range(start, start + 10):
            writer.add("service_status", row(i))
        writer.flush()
    assert writer.pending_rows() == 30 and stored(store) == []
    assert not writer.reachable
    flaky.down = False
    writer.add("service_status", row(30))
    writer.flush()
    assert writer.pending_rows() == 0 and writer.reachable
    assert stored(store) == list(range(31))


def test_a_full_disk_is_told_by_its_kind_once_and_retried_whatever_its_words(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer, flaky = make(store, tmp_path)
    # the server's own words, which do not say "disk full": the kind says it
    flaky.full = DiskFull("ClickHouse at test:9000 refused `INSERT INTO monitor.service_status`: "
                          "Code 243: Cannot reserve 1.00 MiB, not enough space")  # fmt: skip
    for i in range(3):
        writer.add("service_status", row(i))
        writer.flush()
    assert writer.pending_rows() == 3 and not writer.reachable
    said = [r.getMessage() for r in caplog.records if r.name == "lightbulb.writer"]
    assert len(said) == 1 and said[0].startswith("ClickHouse's disk is full"), said
    flaky.full = None
    writer.flush()
    assert writer.pending_rows() == 0 and stored(store) == [0, 1, 2]
    assert writer.stats.rows_set_aside == 0


def test_rows_in_the_log_survive_a_crash_and_are_stored_by_the_next_writer(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, flaky = make(store, tmp_path)
    flaky.down = True
    for i in range(7):
        writer.add("service_status", row(i))
    writer.commit()  # on disk; then the process dies without stop()
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    assert reborn.pending_rows() == 7
    reborn.flush()
    assert stored(store) == list(range(7))
    assert list((tmp_path / "spool" / "wal").glob("*.wal")) != []  # the live segment only


def test_a_batch_inserted_but_not_marked_done_is_stored_once_after_a_crash(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, _ = make(store, tmp_path)
    for i in range(5):
        writer.add("service_status", row(i))
    writer.commit()
    inserter = writer.inserter
    batch = inserter._next_batch("service_status")  # BATCH frame written …
    assert batch is not None
    data = pa.concat_tables([r.data for r in batch.records if r.data is not None])
    store.insert_arrow("service_status", data, dedup_token=batch.id)  # … inserted, then kill -9
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    assert reborn.inserter.open_batches == 1
    reborn.flush()
    assert stored(store) == list(range(5))


def test_a_batch_whose_token_the_engine_logged_but_never_stored_is_stored_after_a_crash(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    # kill -9 inside the embedded engine's insert, after it logged the block's token
    # for deduplication and before it renamed the new part into place: at the next
    # start the part is gone but the token is still known, so replaying the batch
    # under that token would be silently dropped (acknowledged records lost).
    writer, _ = make(store, tmp_path)
    for i in range(5):
        writer.add("service_status", row(i))
    writer.commit()
    batch = writer.inserter._next_batch("service_status")  # BATCH frame written …
    assert batch is not None
    # … the engine takes the token, the part never lands (emulated: a part under the
    # token whose rows are then gone; a real kill leaves a tmp_insert_ dir it removes)
    store.insert_arrow("service_status", pa.concat_tables(
        [r.data for r in batch.records if r.data is not None]).slice(0, 1),
        dedup_token=batch.id)  # fmt: skip
    store.execute("ALTER TABLE monitor.service_status DELETE WHERE 1 SETTINGS mutations_sync = 2")
    assert stored(store) == []
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    assert reborn.inserter.open_batches == 1
    reborn.flush()
    assert stored(store) == list(range(5))
    reborn.flush()  # and once only: done, nothing replayed again
    assert stored(store) == list(range(5))


def crash_after_two_of_six(writer: Writer, store: EmbeddedStorage) -> pa.Table:
    """Six status rows in one open batch, the first two of them stored under another
    token (what a crash mid-insert can leave); returns the batch's rows."""
    for i in range(6):
        writer.add("service_status", row(i))
    writer.commit()
    batch = writer.inserter._next_batch("service_status")
    assert batch is not None
    data = pa.concat_tables([r.data for r in batch.records if r.data is not None])
    store.insert_arrow("service_status", data.slice(0, 2), dedup_token=f"{batch.id}-a")
    return data


def test_a_replayed_batch_stores_only_its_rows_not_stored_whatever_token_stored_them(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    # the replay asks the storage which rows it holds instead of trusting the token:
    # rows already there (here under another token) are not stored twice
    writer, _ = make(store, tmp_path)
    crash_after_two_of_six(writer, store)
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    reborn.flush()
    assert stored(store) == list(range(6))


def test_a_replayed_batch_is_looked_up_in_its_own_time_range_not_the_whole_history(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    # after a crash the replay asks which rows are stored; a year of history must not
    # be read for a batch of the last seconds (a restart would stall on a big table),
    # and equal rows outside the batch's range change nothing (timestamps differ)
    writer, _ = make(store, tmp_path)
    history = 300_000
    store.execute(
        "INSERT INTO monitor.service_status (service_id, timestamp, status_code, message, "
        "response_time_ms) SELECT 'svc', now() - INTERVAL 20 DAY + number, 0, "
        f"concat('check ', toString(number % 6)), number % 6 FROM numbers({history})"
    )
    data = crash_after_two_of_six(writer, store)

    def selected_rows() -> int:  # the engine's own counter of rows its reads selected
        counter = "SELECT value FROM system.events WHERE event = 'SelectedRows'"
        return int(store.query(counter)[0]["value"])

    before = selected_rows()
    assert store.stored_mask("service_status", data) == [True, True] + [False] * 4
    assert selected_rows() - before < history // 10  # the batch's granules, not the history
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    reborn.flush()
    assert store.query(
        "SELECT count() AS n, arraySort(groupArray(response_time_ms)) AS ms "
        "FROM monitor.service_status WHERE timestamp >= {t:DateTime64(3)}",
        {"t": T0.replace(tzinfo=None)},
    ) == [{"n": 6, "ms": list(range(6))}]


def test_add_durable_is_on_disk_when_it_returns(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path)
    flaky.down = True
    writer.add_durable("service_status", [row(i) for i in range(3)])
    # no flush, no stop: a new process finds them
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    reborn.flush()
    assert stored(store) == [0, 1, 2]


def test_concurrent_durable_writes_share_fsyncs(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, _ = make(store, tmp_path)
    threads, calls = 8, 40

    def push(t: int) -> None:
        for c in range(calls):
            writer.add_durable("service_status", [row(t * 1000 + c)])

    workers = [threading.Thread(target=push, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert writer.spool.wal.syncs < threads * calls  # group commit: waiters shared fsyncs
    writer.flush()
    assert len(stored(store)) == threads * calls


def test_refused_rows_are_set_aside_and_the_rest_of_the_batch_stored(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, _ = make(store, tmp_path)
    store.execute(
        "ALTER TABLE monitor.service_status ADD CONSTRAINT no_poison CHECK message != 'poison'"
    )
    for i in range(1000):
        writer.add("service_status", row(i, "poison" if i in (17, 600) else ""))
    writer.flush()
    assert len(stored(store)) == 998
    assert writer.stats.rows_set_aside == 2
    entries = writer.spool.rejected()
    assert sum(e.rows for e in entries) == 2
    assert all("no_poison" in e.reason and "Code 469" in e.reason for e in entries)
    refused = sorted(r[7] for e in entries for r in writer.spool.load_rejected(e).rows)
    assert refused == [17, 600]
    assert writer.pending_rows() == 0


def test_a_row_that_cannot_be_encoded_is_set_aside_not_the_batch(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, _ = make(store, tmp_path)
    writer.add("service_status", row(1))
    writer.add("service_status", row(2, "lone \ud800 surrogate"))
    writer.add("service_status", row(3))
    writer.flush()
    assert stored(store) == [1, 3]
    (entry,) = writer.spool.rejected()
    assert "surrogate" in entry.reason and entry.rows == 1


def test_a_missing_table_is_recreated_not_set_aside(store: EmbeddedStorage, tmp_path: Path) -> None:
    prepared = []

    def prepare() -> None:
        apply_schema(store, Target("monitor"))
        prepared.append(1)

    writer = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES,
                    before_first_write=prepare)  # fmt: skip
    writer.add("service_status", row(1))
    writer.flush()
    store.execute("DROP TABLE monitor.service_status")
    writer.add("service_status", row(2))
    writer.flush()  # refused: unknown table -> schema again
    writer.flush()
    assert stored(store) == [2] and len(prepared) == 2
    assert writer.spool.rejected() == []


def test_spool_files_of_an_older_release_are_taken_over_once(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    import json

    apply_schema(store, Target("monitor"))
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    header = {"id": "old-batch-1", "table": "service_status", "columns": list(STATUS_COLUMNS),
              "datetime_columns": [1]}  # fmt: skip
    rows = [json.dumps(["svc", (T0 + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"), 0,
                        "m", "http", "web", "{}", i, None, None]) for i in range(3)]  # fmt: skip
    (spool_dir / "0000000000000000.batch").write_text("\n".join([json.dumps(header), *rows]))
    store.insert("service_status", STATUS_COLUMNS, [row(i, "m") for i in range(3)],
                 dedup_token="old-batch-1")  # it had been inserted before the upgrade  # fmt: skip
    writer = Writer(store, Spool(spool_dir, 10**8), columns=WRITTEN_TABLES)
    writer.flush()
    assert stored(store) == [0, 1, 2]
    assert list(spool_dir.glob("*.batch")) == []


def test_set_aside_batches_load_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10**6)
    rows = [("svc", T0, "cpu", 1.5, "percent", {"core": "0"})]
    columns = ("service_id", "timestamp", "metric_name", "metric_value", "metric_unit", "tags")
    spool.set_aside(Batch("x1", "service_metrics", columns, rows), "Code 6: cannot parse")
    (entry,) = spool.rejected()
    assert (entry.id, entry.rows, entry.reason) == ("x1", 1, "Code 6: cannot parse")
    assert spool.load_rejected(entry).rows == rows


@pytest.mark.parametrize("kill_at", ["before-sync", "mid-frame"])
def test_a_torn_write_at_the_end_of_the_log_is_cut_off(
    store: EmbeddedStorage, tmp_path: Path, kill_at: str
) -> None:
    writer, flaky = make(store, tmp_path)
    flaky.down = True
    writer.add_durable("service_status", [row(1), row(2)])
    writer.add_durable("service_status", [row(3)])
    (segment,) = sorted((tmp_path / "spool" / "wal").glob("*.wal"))
    size = segment.stat().st_size
    torn = b"LB\x01\xff\xff" if kill_at == "mid-frame" else b"L"
    with open(segment, "ab") as handle:  # what kill -9 during a write leaves: the kernel
        # stops copying a write at a page boundary, so the file ends on one
        handle.write(torn + bytes(-(size + len(torn)) % PAGE))
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    assert segment.stat().st_size == size
    reborn.flush()
    assert stored(store) == [1, 2, 3]
