"""How long a kept answer stands: the first row an edge reaches, over every table read.

:func:`server.web.read_cache.valid_until` finds, in one statement over the times of
all the tables an answer read, the first row at or after each edge. Checked on real
chDB (the benchmark's generated alert history of 30 services) against the rows'
times read out and worked out here, for edges on a row, a millisecond either side,
between rows and past the last.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.dashboard import generate_incidents
from server.alerting.log import aware
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.web.read_cache import FOREVER, ROW_TIME, valid_until

MS = timedelta(milliseconds=1)
TABLES = ("alert_events", "notifications", "service_transitions", "rule_coverage")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    store = EmbeddedStorage(Path(tmp_path_factory.mktemp("edges")) / "db", "monitor")
    apply_schema(store, Target("monitor"))
    generate_incidents(store, 30, 30)
    yield store
    store.close()


def _expected(times: list[datetime], edges: list[datetime], now: datetime) -> datetime:
    until = FOREVER
    for edge in edges:
        after = [t for t in times if t >= edge]
        if after:
            until = min(until, now + (min(after) - edge))
    return max(until, now)


def test_an_answer_stands_until_an_edge_reaches_the_first_row_of_any_table_it_read(
    store: EmbeddedStorage,
) -> None:
    times = {
        t: [aware(r["at"]) for r in store.query(f"SELECT {ROW_TIME[t]} AS at FROM monitor.{t}")]
        for t in TABLES
    }
    assert all(times[t] for t in TABLES[:3]) and not times["rule_coverage"]
    now = datetime.now(UTC).replace(microsecond=0)
    row = sorted(times["service_transitions"])[len(times["service_transitions"]) // 2]
    checked = 0
    for shift in (timedelta(0), MS, -MS, timedelta(hours=5), -timedelta(days=3)):
        at = row + shift  # an edge on a row of one table, or near it
        edges = [at - timedelta(days=30), at, now + timedelta(seconds=1)]
        for tables in (TABLES, TABLES[:2], TABLES[2:], ("alert_events",), ("rule_coverage",)):
            wanted = _expected([x for t in tables for x in times[t]], edges, now)
            assert valid_until(store, set(tables), edges, now) == wanted, (shift, tables)
            checked += 1
    assert checked == 25
