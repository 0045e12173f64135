"""A stop gives the insert thread a bounded time: no insert starts after it, what is
left waits in the spool (said in the log), and the next start stores it exactly once.

Real chDB and a real log; the one stand-in is ``Held``: the real store whose inserts
wait until the test lets them go, which is how a slow ClickHouse looks to the writer.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.writer import Writer
from tests.test_writer import make, row, stored


class Held:
    """The real store; each insert waits for ``go`` (``entered`` set once one waits)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.go = threading.Event()
        self.entered = threading.Event()
        self.inserts = 0

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> int:
        self.entered.set()
        self.go.wait(30)
        self.inserts += 1
        return int(self.inner.insert_arrow(table, data, dedup_token=dedup_token))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_no_insert_starts_after_the_stop_and_the_rest_is_stored_once_at_the_next_start(
    store: EmbeddedStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer, flaky = make(store, tmp_path, batch_rows=10, insert_interval=3600)
    held = Held(flaky.inner)
    flaky.inner = held  # type: ignore[assignment]
    for i in range(50):  # five full batches of 10
        writer.add("service_status", row(i))
        if i % 10 == 9:
            writer.commit()
    writer.start()
    assert held.entered.wait(30)  # the first batch's insert is under way, and waits
    with caplog.at_level(logging.WARNING, logger="lightbulb.writer"):
        writer.stop(timeout=0.2)
    said = [r.getMessage() for r in caplog.records if "stay in the spool" in r.getMessage()]
    assert len(said) == 1 and "under way" in said[0] and "50 rows" in said[0], said
    held.go.set()  # the insert under way ends ...
    writer.inserter.loop._thread.join(30)  # type: ignore[union-attr]
    assert held.inserts == 1  # ... and no other starts
    assert stored(store) == list(range(10))

    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    reborn.flush()
    assert stored(store) == list(range(50))  # each row once
