"""Alert state survives a restart: rebuilt from the alert log in a real chDB.

What must come back: alert states and pending timers, acknowledgements, failure
runs (consecutive_failures), flapping, API silences, the notices still queued
(sent once, with their idempotency key) and the delivery state of every channel.
The daemon-level versions (SIGTERM and kill -9) are in test_daemon_alerting.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from checkers.base import Status
from server.alerting.log import AlertLog, aware
from server.alerting.log_reads import LATEST_TRANSITION
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock

RULES = """
alert_rules:
  - {id: down, service: "*", condition: "status >= FAILED", channels: [hook]}
  - {id: slow, service: api, condition: "status >= DEGRADED", for: 1m, channels: [hook]}
  - {id: three, service: web, condition: "consecutive_failures >= 3", channels: [mail]}
"""


def restarted(h: Harness, store: EmbeddedStorage, rules: str = RULES, **kw: str) -> Harness:
    """The same daemon started again on the same storage, a little later."""
    h.persist(store)
    again = Harness(rules, FakeClock(h.clock.now() + timedelta(seconds=1)), storage=store,
                    path=h.path, **kw)  # fmt: skip
    again.engine.restore()
    again.deliver()
    return again


def test_a_restart_neither_resends_a_firing_alert_nor_loses_its_resolve(
    store: EmbeddedStorage,
) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    h.result("db", Status.FAILED)
    assert h.told() == [("alert", "db", "firing")]

    h2 = restarted(h, store)
    assert h2.state("down:db") == "firing"
    h2.result("db", Status.FAILED, advance=10)
    h2.tick(1)
    assert h2.told() == [("alert", "db", "firing")]  # still the one from before the restart
    h2.result("db", Status.OK, advance=10)
    assert h2.told() == [("alert", "db", "firing"), ("alert", "db", "resolved")]
    db = h2.engine.alerts()[0]
    assert (db["notified"], [d["state"] for d in db["delivery"]]) == (True, ["delivered"])


def test_news_still_in_group_wait_at_the_stop_is_sent_after_the_restart(
    store: EmbeddedStorage,
) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES, group_wait="30s")
    h.result("db", Status.FAILED)  # the daemon stops before group_wait is over
    assert h.told() == []

    h2 = restarted(h, store)
    assert h2.told() == [("alert", "db", "firing")]


def test_a_notice_queued_but_not_delivered_is_resumed_once_with_its_key(
    store: EmbeddedStorage,
) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    h.receiver.failing = True
    try:
        h.result("db", Status.FAILED)
        h.tick(5)  # a second attempt: both answered 500
    finally:
        h.receiver.failing = False
    keys = {r.headers["Idempotency-Key"] for r in h.receiver.arrivals if r.path.startswith(h.path)}
    assert len(keys) == 1 and h.told() == []
    (before,) = h.engine.alerts()[0]["delivery"]
    assert (before["state"], before["attempts"]) == ("retrying", 2)

    h2 = restarted(h, store)
    assert h2.told() == [("alert", "db", "firing")]
    assert h2.sent()[0].headers["Idempotency-Key"] == keys.pop()
    (after,) = h2.engine.alerts()[0]["delivery"]
    assert (after["state"], after["attempts"]) == ("delivered", 3)
    h2.tick(60)
    assert len(h2.told()) == 1


def test_pending_timers_acks_and_failure_runs_carry_over_a_restart(
    store: EmbeddedStorage,
) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    h.result("api", Status.DEGRADED)
    h.result("db", Status.FAILED)
    assert h.engine.acknowledge("down:db", "ana", "on it") is not None
    for _ in range(2):  # two failures in a row; the third comes after the restart
        h.result("web", Status.FAILED, advance=10)
    h.result("web", Status.OK, advance=10)
    for _ in range(2):
        h.result("web", Status.FAILED, advance=10)
    store.insert(
        "service_status",
        ("service_id", "timestamp", "status_code"),
        [
            ("web", h.clock.now() - timedelta(seconds=s), c)
            for s, c in [(40, 2), (30, 2), (20, 0), (10, 2), (0, 2)]
        ],
    )  # fmt: skip — what the recorder wrote meanwhile

    h2 = restarted(h, store)
    assert h2.state("slow:api") == "pending"
    h2.result("api", Status.DEGRADED, advance=60)
    assert h2.state("slow:api") == "firing"  # counted from before the restart
    assert h2.engine.alert("down:db").acked_by == "ana"  # type: ignore[union-attr]
    h2.tick(4 * 3600)
    assert h2.kinds().count("repeat") == 0  # acknowledged: no repeats
    h2.result("db", Status.OK, advance=1)  # upstream alerts would inhibit web's
    h2.result("api", Status.OK, advance=1)
    assert h2.state("three:web") == "inactive"
    h2.result("web", Status.FAILED, advance=10)  # the third in a row
    assert h2.state("three:web") == "firing"
    assert h2.told("mail") == [("alert", "web", "firing")]


def test_flapping_stays_flapping_across_a_restart(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    rules = RULES + "alerting: {group_wait: 0s, flapping: {window: 6, high: 0.5, low: 0.2}}\n"
    h = Harness(rules)
    statuses = [Status.OK, Status.FAILED] * 4
    for status in statuses:
        h.result("db", status, advance=10)
    store.insert(
        "service_status", ("service_id", "timestamp", "status_code"),
        [("db", h.clock.now() - timedelta(seconds=10 * i), int(s))
         for i, s in enumerate(reversed(statuses))],
    )  # fmt: skip
    assert h.kinds().count("flapping") == 1

    h2 = restarted(h, store, rules)
    assert h2.engine.alerts()[0]["suppressed"] == "flapping"
    h2.result("db", Status.OK, advance=10)
    h2.result("db", Status.FAILED, advance=10)
    assert h2.kinds().count("flapping") == 1  # the same episode: no second flapping notice


def test_api_silences_survive_a_restart_until_they_end(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    now = h.clock.now()
    silence = h.engine.add_silence(
        service="db", rule="", start=now, end=now + timedelta(hours=1), author="ana",
        comment="disk swap",
    )  # fmt: skip
    h2 = restarted(h, store)
    restored = h2.engine.silences.get(silence.id)
    assert restored is not None
    assert (restored.author, restored.comment) == ("ana", "disk swap")
    h2.result("db", Status.FAILED, advance=1)
    assert h2.told() == []
    assert h2.transitions()[-1][3] == "silenced"


def test_an_api_silence_ended_early_stays_ended_across_a_restart_and_in_the_timeline(
    store: EmbeddedStorage,
) -> None:
    """Its newest version (the early end) is what the restore and the incident
    timeline read, not the first one (an hour long)."""
    apply_schema(store, Target("monitor"))
    h = Harness(RULES)
    start = h.clock.now()
    silence = h.engine.add_silence(
        service="db", rule="", start=start, end=start + timedelta(hours=1), author="ana",
        comment="disk swap",
    )  # fmt: skip
    h.persist(store)  # each version in its own insert, as the writer's batches would be
    h.clock.advance(60)
    assert h.engine.expire_silence(silence.id) is not None
    h2 = restarted(h, store)
    assert h2.engine.silences.get(silence.id) is None
    h2.result("db", Status.FAILED, advance=1)
    assert h2.told() == [("alert", "db", "firing")]
    (kept,) = h2.log.silences_between(start, start + timedelta(hours=2))
    assert (kept.id, kept.end, kept.created_at) == (
        silence.id,
        start + timedelta(seconds=60),
        start,
    )


def test_the_alerts_page_and_a_restart_read_the_same_latest_transition(
    store: EmbeddedStorage,
) -> None:
    """Acks and delivery rows come after the transition and rows arrive out of order:
    both readers take each alert's newest *transition*, and agree column by column."""
    apply_schema(store, Target("monitor"))
    t0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    cols = ("timestamp", "event", "rule_id", "service_id", "from_state", "to_state",
            "severity", "value", "message", "delivery_result", "caused_by")  # fmt: skip
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    store.insert("alert_events", cols, [
        (at(60), "transition", "down", "db", "pending", "firing", "critical", 3.0, "db is down",
         "queued", "net"),
        (at(0), "transition", "down", "db", "inactive", "pending", "critical", 2.0, "db fails",
         "none", ""),
        (at(90), "delivery", "down", "db", "firing", "firing", "critical", 3.0, "notice n1",
         "sent", ""),
        (at(120), "ack", "down", "db", "firing", "firing", "critical", None, "on it", "", "ana"),
        (at(30), "transition", "slow", "api", "firing", "resolved", "warning", 1.0, "api ok",
         "queued", ""),
        (at(10), "transition", "slow", "api", "pending", "firing", "warning", 9.0, "api slow",
         "queued", ""),
    ])  # fmt: skip
    log = AlertLog(None, store)
    page = {(r["rule_id"], r["service_id"]): r for r in log.states(at(200))}
    restored = {
        (r["rule_id"], r["service_id"]): r for r in log.restore([], 0, at(200), timedelta(0)).alerts
    }

    assert {k: (r["state"], r["value"], r["message"], r["caused_by"]) for k, r in page.items()} == {
        ("down", "db"): ("firing", 3.0, "db is down", "net"),
        ("slow", "api"): ("resolved", 1.0, "api ok", ""),
    }
    assert aware(page["down", "db"]["since"]) == aware(page["down", "db"]["started"]) == at(60)
    assert aware(page["slow", "api"]["started"]) == at(10)
    assert restored["down", "db"]["acked_by"] == "ana"
    for key, row in page.items():
        assert {c: restored[key][c] for c in LATEST_TRANSITION} == {
            c: row[c] for c in LATEST_TRANSITION
        }
