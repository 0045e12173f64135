"""Batched writes, the disk spool and exactly-once replay, on real chDB.

The only stand-in is ``Flaky``: it wraps the real store and refuses inserts
while ``down`` is set, which is how an unreachable ClickHouse looks to the writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.recorder import STATUS_COLUMNS
from server.schema import Target, apply_schema
from server.spool import Batch, Spool
from server.storage import StorageUnavailable
from server.storage.embedded import EmbeddedStorage
from server.writer import Writer

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Flaky:
    """The real store, unreachable while ``down`` is true."""

    def __init__(self, inner: EmbeddedStorage) -> None:
        self.inner = inner
        self.database = inner.database
        self.kind = inner.kind
        self.down = False
        self.inserts = 0

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        if self.down:
            raise StorageUnavailable("ClickHouse at test:9000 is unreachable: connection refused")
        self.inserts += 1
        return self.inner.insert(table, columns, rows, dedup_token=dedup_token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def row(i: int) -> tuple[Any, ...]:
    return ("svc", T0 + timedelta(seconds=i), 0, f"check {i}", "http", "web", "{}", i, None, None)


def stored(store: EmbeddedStorage) -> list[int]:
    return [
        r["response_time_ms"]
        for r in store.query(
            "SELECT response_time_ms FROM monitor.service_status ORDER BY timestamp"
        )
    ]


def make(store: EmbeddedStorage, tmp_path: Path, **kwargs: Any) -> tuple[Writer, Flaky]:
    apply_schema(store, Target("monitor"))
    flaky = Flaky(store)
    return Writer(flaky, Spool(tmp_path / "spool", kwargs.pop("max_bytes", 10**8)), **kwargs), flaky  # type: ignore[arg-type]


def test_rows_are_written_in_one_insert_per_table(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path)
    for i in range(250):
        writer.add("service_status", row(i))
    writer.flush()
    assert flaky.inserts == 1 and len(stored(store)) == 250


def test_batch_rows_splits_large_buffers(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path, batch_rows=100)
    for i in range(250):
        writer.add("service_status", row(i))
    writer.flush()
    assert flaky.inserts == 3 and stored(store) == list(range(250))


def test_outage_spools_then_replays_once_in_order(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path)
    flaky.down = True
    for start in (0, 10, 20):
        for i in range(start, start + 10):
            writer.add("service_status", row(i))
        writer.flush()
    assert len(writer.spool) == 3 and stored(store) == []
    flaky.down = False
    writer.add("service_status", row(30))  # newer rows wait behind the spool
    writer.flush()
    assert len(writer.spool) == 0
    assert stored(store) == list(range(31))


def test_replay_after_crash_between_insert_and_delete_stores_once(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    writer, _ = make(store, tmp_path)
    batch = Batch(
        "batch-crashed-midway", "service_status", STATUS_COLUMNS, [row(i) for i in range(5)]
    )
    store.insert("service_status", STATUS_COLUMNS, batch.rows, dedup_token=batch.id)  # inserted…
    writer.spool.append(batch)  # …but the file was never deleted
    writer.replay()
    assert stored(store) == list(range(5)) and len(writer.spool) == 0


def test_spool_survives_a_new_writer(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, flaky = make(store, tmp_path)
    flaky.down = True
    for i in range(7):
        writer.add("service_status", row(i))
    writer.flush()
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8))
    assert len(reborn.spool) == 1
    reborn.flush()
    assert stored(store) == list(range(7))


def test_spool_is_bounded_dropping_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=3000)
    for n in range(10):
        spool.append(
            Batch(f"b{n}", "service_status", STATUS_COLUMNS, [row(n * 10 + i) for i in range(10)])
        )
    assert spool.bytes <= 3000
    assert spool.dropped_rows > 0
    kept = [spool.load(p).id for p in spool.pending()]
    assert kept[-1] == "b9" and kept == sorted(kept, key=lambda b: int(b[1:]))


def test_spooled_datetimes_and_maps_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10**6)
    rows = [("svc", T0, "cpu", 1.5, "percent", {"core": "0"})]
    spool.append(
        Batch(
            "x1",
            "service_metrics",
            ("service_id", "timestamp", "metric_name", "metric_value", "metric_unit", "tags"),
            rows,
        )
    )
    loaded = spool.load(spool.pending()[0])
    assert loaded.rows == rows


def test_refused_batch_is_set_aside_after_retries(store: EmbeddedStorage, tmp_path: Path) -> None:
    writer, _ = make(store, tmp_path)
    bad = Batch("refused", "service_status", ("service_id", "no_such_column"), [("svc", 1)])
    writer.spool.append(bad)
    for _ in range(6):
        writer.replay()
    assert len(writer.spool) == 0
    assert (tmp_path / "spool" / "rejected").is_dir()
