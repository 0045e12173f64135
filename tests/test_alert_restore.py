"""Alert state survives a restart: rebuilt from alert_events in a real chDB."""

from __future__ import annotations

from checkers.base import Status
from server.alerting.engine import ALERT_TABLE_COLUMNS
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock

RULES = """
alert_rules:
  - {id: down, service: "*", condition: "status >= FAILED", channels: [hook]}
  - {id: slow, service: api, condition: "status >= DEGRADED", for: 1m, channels: [hook]}
"""


def persist(h: Harness, store: EmbeddedStorage) -> None:
    """What the writer does with the engine's rows, in one go."""
    for table, columns in ALERT_TABLE_COLUMNS.items():
        rows = [row for t, row in h.rows if t == table]
        if rows:
            store.insert(table, columns, rows)
    h.rows.clear()


def restarted(h: Harness, store: EmbeddedStorage) -> Harness:
    again = Harness(RULES, FakeClock(h.clock.now()))
    again.engine.restore(store)
    return again


def test_a_restart_neither_resends_a_firing_alert_nor_loses_its_resolve(
    store: EmbeddedStorage,
) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    h.result("db", Status.FAILED)
    for notice in h.notices:
        h.engine.delivered(notice, None, 1)
    persist(h, store)

    h2 = restarted(h, store)
    assert h2.state("down:db") == "firing"
    h2.result("db", Status.FAILED, advance=10)
    h2.tick(1)
    assert h2.told() == []  # already told before the restart
    h2.result("db", Status.OK, advance=10)
    assert h2.told() == [("alert", "db", "resolved")]


def test_a_notification_queued_but_not_delivered_before_the_restart_is_sent_after(
    store: EmbeddedStorage,
) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    h.result("db", Status.FAILED)
    persist(h, store)  # killed before the channel worker delivered it

    h2 = restarted(h, store)
    assert h2.told() == [("alert", "db", "firing")]


def test_pending_timers_and_failure_runs_carry_over_a_restart(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    h.result("api", Status.DEGRADED)
    persist(h, store)
    h2 = restarted(h, store)
    assert h2.state("slow:api") == "pending"
    h2.result("api", Status.DEGRADED, advance=60)
    assert h2.state("slow:api") == "firing"  # counted from before the restart


def test_api_silences_survive_a_restart_until_they_end(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    now = h.clock.now()
    from datetime import timedelta

    silence = h.engine.add_silence(
        service="db", rule="", start=now, end=now + timedelta(hours=1), author="ana",
        comment="disk swap",
    )  # fmt: skip
    persist(h, store)
    h2 = restarted(h, store)
    restored = h2.engine.silences.get(silence.id)
    assert restored is not None
    assert (restored.author, restored.comment) == ("ana", "disk swap")
    h2.result("db", Status.FAILED, advance=1)
    assert h2.told() == []
    assert h2.transitions()[-1][3] == "silenced"
