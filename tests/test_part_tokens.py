"""A table's token changes with its contents, and a background merge leaves it as it was.

The dashboard keeps answers while the tokens of the tables they read are unchanged
(:mod:`server.web.read_cache`). With the hash of part names, every merge (one or more
after each insert) made the next request derive its incidents again (~150-250 ms at
1,000 services) though nothing had changed. Real chDB: every way its contents change
must change the token; a merge must not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.schema import Target, apply_schema
from server.storage import changes
from server.storage.embedded import EmbeddedStorage

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
COLUMNS = ("timestamp", "event", "rule_id", "service_id", "message")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStorage]:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    store.execute("SYSTEM STOP MERGES monitor.alert_events")  # merges when the test says
    yield store
    store.close()


def event(store: EmbeddedStorage, n: int, at: datetime = NOW) -> None:
    store.insert("alert_events", COLUMNS, [(at + timedelta(seconds=n), "ack", "r", f"s{n}", "m")])


def token(store: EmbeddedStorage) -> int:
    return changes.part_tokens(store, ["alert_events"])["alert_events"]


def parts(store: EmbeddedStorage) -> int:
    return int(store.query(
        "SELECT count() AS n FROM system.parts WHERE database = 'monitor' "
        "AND table = 'alert_events' AND active")[0]["n"])  # fmt: skip


def test_a_merge_leaves_the_token_and_each_change_of_contents_moves_it(
    store: EmbeddedStorage,
) -> None:
    for n in range(4):
        event(store, n)
    event(store, 9, NOW - timedelta(days=40))  # another partition (month)
    seen = [token(store)]
    assert parts(store) == 5
    store.execute("SYSTEM START MERGES monitor.alert_events")
    store.execute("OPTIMIZE TABLE monitor.alert_events FINAL")
    assert parts(store) == 2 and token(store) == seen[-1]  # merged: same contents

    def changed() -> bool:
        now = token(store)
        moved = now not in seen
        seen.append(now)
        return moved

    event(store, 10)  # an insert
    assert changed()
    store.execute("ALTER TABLE monitor.alert_events DELETE WHERE service_id = 's1' "
                  "SETTINGS mutations_sync = 1")  # fmt: skip
    assert changed()
    store.execute("DELETE FROM monitor.alert_events WHERE service_id = 's2'")  # lightweight
    assert changed()
    # merging the masked rows away leaves fewer rows: a recomputation, never stale
    store.execute("OPTIMIZE TABLE monitor.alert_events FINAL")
    seen.append(token(store))
    store.execute("ALTER TABLE monitor.alert_events DROP PARTITION 202610")
    assert changed()
    event(store, 11, NOW - timedelta(days=40))  # into an emptied month again
    assert changed()
    # a TTL deletion (every row here is past it), materialized as ClickHouse does
    store.execute("ALTER TABLE monitor.alert_events MODIFY TTL toDateTime(timestamp) + "
                  "INTERVAL 1 DAY SETTINGS mutations_sync = 1")  # fmt: skip
    assert store.query("SELECT count() AS n FROM monitor.alert_events")[0]["n"] == 0
    now = changes.part_tokens(store, ["alert_events"]).get("alert_events")
    assert now not in seen
    assert len(set(seen)) == len(seen)
