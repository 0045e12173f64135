"""The delivery stages, each alone, then together: group, dedupe, outbox order, retry
until the deadline, permanent failures, fallbacks, and hung receivers."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.alerting.engine import AlertEngine
from server.alerting.log import AlertLog
from server.core.clock import SystemClock
from server.notify.base import AlertItem, ChannelError, Notice
from server.notify.dispatcher import Dispatcher
from server.notify.grouping import Groups
from server.notify.ledger import DeliveryState, Ledger
from server.notify.outbox import Delivery, Outbox
from server.notify.retry import RetryPolicy
from server.recorder import Recorder
from server.scheduler import CheckScheduler
from server.validation import parse_config
from tests.conftest import free_port, wait_until
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver
from tests.test_notify_channels import item
from tests.test_scheduler import ListSink

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Log:
    """A DeliveryLog (the record stage) that keeps what it is told."""

    def __init__(self) -> None:
        self.saved: list[tuple[Notice, DeliveryState]] = []
        self.outcomes: list[tuple[str, str, int, str]] = []  # (notice id, state, attempts, error)
        self.drops: list[tuple[str, str, str]] = []  # (channel, alert id, state)

    def queued(self, notice: Notice, state: DeliveryState) -> None:
        self.saved.append((notice, state))

    def outcome(self, notice: Notice, state: DeliveryState) -> None:
        self.outcomes.append((state.notice_id, state.state, state.attempts, state.error))

    def dropped(self, channel: str, items: list[AlertItem], reason: str) -> None:
        self.drops += [(channel, i.alert_id, i.state) for i in items]


def config(url: str, extra: str = "") -> Any:
    return parse_config(
        f"""
services:
  - {{id: db, type: tcp, tcp: {{host: 127.0.0.1, port: 1}}}}
channels:
  hook: {{type: webhook, url: "{url}/hook", timeout: 2s}}
  backup: {{type: webhook, url: "{url}/backup", timeout: 2s}}
alerting: {{group_wait: 0s, retry_backoff: 1s, retry_max_backoff: 60s{extra}}}
""",
        "t.yaml",
        {},
    )


def dispatcher(url: str, extra: str = "", clock: Any = None) -> tuple[Dispatcher, Log, Any]:
    log, clock = Log(), clock or FakeClock()
    return Dispatcher(config(url, extra), clock, log, rng=random.Random(7)), log, clock


def alert_notice(service: str = "db", state: str = "firing", channel: str = "hook") -> Notice:
    return Notice(channel, "alert", "down", [item(state, service=service)], AT)


def run_until_settled(
    d: Dispatcher, clock: FakeClock, limit: float = 7200, worker: str = "hook"
) -> list[float]:
    """Step the pipeline, jumping the clock to each next due time; returns the waits."""
    waits = []
    channel = d.workers[worker]
    while True:
        d.step()
        due = channel.outbox.next_due()
        if due is None or clock.monotonic() > 1000 + limit:
            return waits
        waits.append(max(due - clock.monotonic(), 0))
        clock.advance(max(due - clock.monotonic(), 0))


# -- stages alone -----------------------------------------------------------------------
def test_group_wait_merges_news_of_one_rule_and_later_news_of_an_alert_replaces_earlier() -> None:
    groups = Groups(0.5)
    groups.add(alert_notice("db"), 0.0)
    groups.add(alert_notice("api"), 0.2)
    groups.add(alert_notice("db", "resolved"), 0.3)
    assert groups.due(0.4) == []
    (merged,) = groups.due(0.5)
    assert [(i.service_id, i.state) for i in merged.items] == [
        ("db", "resolved"),
        ("api", "firing"),
    ]


def _state(notice: Notice) -> DeliveryState:
    return DeliveryState(notice.id or "n", notice.channel, notice.kind, AT, AT + timedelta(hours=1))


def test_dedupe_drops_a_resolve_the_channel_was_never_told_the_firing_of() -> None:
    ledger = Ledger()
    assert ledger.dedupe(alert_notice(state="resolved")) is None
    firing = alert_notice()
    assert ledger.dedupe(firing) is firing
    state = _state(firing)
    ledger.committed(firing, state)
    assert ledger.dedupe(alert_notice()) is None  # already being told
    resolve = alert_notice(state="resolved")
    assert ledger.dedupe(resolve) is resolve  # queued behind its firing...
    assert not ledger.may_attempt("hook", resolve.items[0])  # ...and sent only once
    state.state = "delivered"  # the firing was delivered
    assert ledger.may_attempt("hook", resolve.items[0])


def test_dedupe_treats_a_new_incident_as_news_even_after_a_failed_resolve() -> None:
    ledger = Ledger()
    first = alert_notice()
    ledger.committed(first, replace(_state(first), state="delivered"))
    resolve = alert_notice(state="resolved")
    ledger.committed(resolve, replace(_state(resolve), notice_id="r", state="failed"))
    later = replace(item(), since=AT + timedelta(hours=1), started=AT + timedelta(hours=1))
    assert ledger.needs("hook", later)


def test_the_outbox_keeps_a_groups_order_but_lets_other_groups_pass() -> None:
    outbox = Outbox(10)
    blocked = Delivery(alert_notice(), _state(alert_notice()), due=50.0)  # retrying later
    behind = Delivery(alert_notice(state="resolved"), _state(alert_notice()), due=0.0)
    other = Notice("hook", "alert", "slow", [item(service="api")], AT)
    free = Delivery(other, _state(other), due=0.0)
    for delivery in (blocked, behind, free):
        outbox.add(delivery)
    assert outbox.next_ready(1.0) is free
    outbox.remove(free)
    assert outbox.next_ready(1.0) is None  # the resolve waits for its firing
    assert outbox.next_ready(50.0) is blocked


def test_full_jitter_delays_stay_under_a_doubling_ceiling_and_honour_retry_after() -> None:
    policy, rng = RetryPolicy(1.0, 60.0, 3600.0), random.Random(3)
    for attempt in range(1, 12):
        assert 0 <= policy.delay(attempt, rng) <= min(60.0, 2 ** (attempt - 1))
    assert policy.delay(1, rng, retry_after=30.0) >= 30.0
    transient, permanent = ChannelError("503"), ChannelError("404", permanent=True)
    deadline = AT + timedelta(hours=1)
    assert policy.next_try(permanent, 1, AT, deadline, rng) is None
    assert policy.next_try(transient, 1, deadline, deadline, rng) is None
    assert policy.next_try(transient, 40, AT + timedelta(minutes=59, seconds=59), deadline,
                           rng) == pytest.approx(1.0)  # fmt: skip  # the last try at the deadline
    capped = RetryPolicy(1.0, 60.0, 3600.0, retries=2)
    assert capped.next_try(transient, 2, AT, deadline, rng) is not None
    assert capped.next_try(transient, 3, AT, deadline, rng) is None


# -- the pipeline, against a real receiver ----------------------------------------------------
def test_a_receiver_failing_three_times_gets_the_notice_once_with_one_key(
    receiver: HttpReceiver,
) -> None:
    d, log, clock = dispatcher(receiver.url)
    receiver.fail_next = 3
    d.submit(alert_notice())
    waits = run_until_settled(d, clock)
    assert [a.status for a in receiver.arrivals] == [500, 500, 500, 200]
    assert len({a.headers["Idempotency-Key"] for a in receiver.arrivals}) == 1
    assert receiver.arrivals[0].json["idempotency_key"] == receiver.arrivals[0].headers[
        "Idempotency-Key"]  # fmt: skip
    assert [s for _, s, _, _ in log.outcomes] == ["retrying", "retrying", "retrying", "delivered"]
    assert all(w <= 2**i for i, w in enumerate(waits))


def test_transient_failures_are_retried_until_the_deadline_then_fall_back(
    receiver: HttpReceiver,
) -> None:
    d, log, clock = dispatcher(
        receiver.url, ", delivery_deadline: 10m, fallback_channels: [backup]"
    )
    receiver.failing = True
    d.submit(alert_notice())
    d.step()
    receiver_path = [a for a in receiver.arrivals if a.path == "/hook"]
    assert len(receiver_path) == 1
    worker = d.workers["hook"]
    while worker.outbox.pending():
        due = worker.outbox.next_due()
        assert due is not None
        clock.advance(max(due - clock.monotonic(), 0))
        d.workers["hook"].step()
    tries = [a for a in receiver.arrivals if a.path == "/hook"]
    assert 5 < len(tries) < 40  # backoff to 60 s over 10 minutes
    assert (tries[-1].at - tries[0].at) < 60  # (the clock was pinned; real time barely moved)
    assert log.outcomes[-1][1] == "failed"
    receiver.failing = False
    d.workers["backup"].step()
    (fallback,) = [a.json for a in receiver.requests if a.path == "/backup"]
    assert fallback["kind"] == "fallback"
    assert fallback["title"].startswith("Not delivered to hook after")
    assert [a["service_id"] for a in fallback["alerts"]] == ["db"]


def test_a_permanent_failure_stops_at_once_and_is_recorded_as_such(
    receiver: HttpReceiver,
) -> None:
    d, log, clock = dispatcher(receiver.url, ", fallback_channels: [backup]")
    receiver.fail_next, receiver.fail_status = 1, 404
    d.submit(alert_notice())
    d.step()
    clock.advance(3600)
    d.step()
    assert [(a.path, a.status) for a in receiver.arrivals] == [("/hook", 404), ("/backup", 200)]
    (_notice_id, state, attempts, error) = log.outcomes[0]
    assert (state, attempts) == ("failed", 1)
    assert "HTTP 404" in error
    assert d.stats()["hook"]["failed"] == 1


def test_a_resolve_queued_behind_a_firing_that_finally_failed_is_not_sent(
    receiver: HttpReceiver,
) -> None:
    d, log, clock = dispatcher(receiver.url, ", delivery_deadline: 1m")
    receiver.failing = True
    d.submit(alert_notice())
    d.step()
    d.submit(alert_notice(state="resolved"))  # resolved while its firing is retrying
    d.step()
    run_until_settled(d, clock)
    receiver.failing = False
    run_until_settled(d, clock)
    assert receiver.requests == []
    assert log.drops == [("hook", "down:db", "resolved")]


def test_a_hung_channel_does_not_hold_up_another_channel() -> None:
    hung, fine = HttpReceiver(hanging=True), HttpReceiver()
    cfg = parse_config(
        f"""
services:
  - {{id: db, type: tcp, tcp: {{host: 127.0.0.1, port: 1}}}}
channels:
  slow: {{type: webhook, url: "{hung.url}"}}
  fast: {{type: webhook, url: "{fine.url}"}}
alerting: {{group_wait: 0s}}
""",
        "t.yaml",
        {},
    )
    d = Dispatcher(cfg, SystemClock(), Log())
    d.start()
    try:
        d.submit(Notice("slow", "alert", "down", [item()], AT))
        d.submit(Notice("fast", "alert", "down", [item()], AT))
        fine.wait_for(1, seconds=5)
        assert hung.requests == []
    finally:
        hung.release.set()
        d.stop(deadline=3)
        hung.close()
        fine.close()


def test_a_hung_receiver_does_not_delay_checks() -> None:
    hung = HttpReceiver(hanging=True)
    closed = free_port()  # a real TCP check of a port nobody listens on: FAILED every time
    cfg = parse_config(
        f"""
services:
  - {{id: db, type: tcp, interval: 1s, tcp: {{host: 127.0.0.1, port: {closed}}}}}
channels:
  hook: {{type: webhook, url: "{hung.url}", response_timeout: 20s}}
alert_rules:
  - {{id: down, service: db, condition: "status >= FAILED", channels: [hook],
     repeat_interval: 1s}}
alerting: {{group_wait: 0s}}
""",
        "t.yaml",
        {},
    )
    sink, clock = ListSink(), SystemClock()
    d = Dispatcher(cfg, clock, Log())
    engine = AlertEngine(cfg, AlertLog(None, None, clock), d, clock)
    scheduler = CheckScheduler(Recorder(sink, listener=engine), clock, max_workers=2)
    d.start()
    scheduler.sync(list(cfg.services))
    scheduler.start()
    try:
        assert wait_until(lambda: hung.attempts >= 1)  # the receiver now holds the worker
        before = len(sink.statuses("db"))
        started = time.monotonic()
        assert wait_until(lambda: len(sink.statuses("db")) >= before + 3, seconds=8)
        assert time.monotonic() - started < 8  # 3 checks at 1 s, not stuck behind 20 s
        assert hung.max_in_flight == 1  # repeats wait: never a second attempt alongside
    finally:
        scheduler.shutdown(wait_seconds=1)
        hung.release.set()
        d.stop(deadline=2)
        hung.close()


def test_storage_trouble_writing_delivery_records_is_logged_once_per_change_of_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d, _, _ = dispatcher("http://127.0.0.1:9/")

    def down() -> None:
        raise OSError("ClickHouse unreachable")

    caplog.set_level(logging.DEBUG, logger="lightbulb")
    for _ in range(50):
        d.record(down)
    d.record(lambda: None)
    d.record(down)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2  # the first failure, and the first after the recovery
    assert all(r.exc_info is None for r in errors)  # no traceback per failure
    recovered = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(recovered) == 1
    assert "50 were not written" in recovered[0].getMessage()


def test_delivery_records_failing_are_said_once_then_a_minute_later_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d, _, clock = dispatcher("http://127.0.0.1:1")

    def broken() -> None:
        raise OSError("storage away")

    caplog.set_level(logging.INFO, logger="lightbulb.notify")
    for _ in range(120):  # two records a second for a minute
        d.record(broken)
        clock.advance(0.5)
    d.record(broken)
    d.record(lambda: None)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["ERROR", "ERROR", "WARNING"], said
    assert "(storage: storage away; 119 more since the last such line)" in said[1][1]
    assert said[2][1] == "delivery records are written again; 121 were not written meanwhile"


class CountsAtRecord(Log):
    """A Log that notes, at each record it is handed, what ``/metrics`` counts then."""

    def __init__(self) -> None:
        super().__init__()
        self.dispatcher: Dispatcher | None = None
        # (channel, what was recorded, its count at that moment)
        self.seen: list[tuple[str, str, int]] = []

    def _count(self, channel: str, what: str) -> None:
        assert self.dispatcher is not None
        self.seen.append((channel, what, self.dispatcher.stats()[channel][what]))

    def outcome(self, notice: Notice, state: DeliveryState) -> None:
        super().outcome(notice, state)
        if state.state in ("delivered", "failed", "dropped", "expired"):
            self._count(state.channel, state.state)

    def dropped(self, channel: str, items: list[AlertItem], reason: str) -> None:
        super().dropped(channel, items, reason)
        self._count(channel, "dropped")


def test_a_delivery_is_counted_only_after_its_record_is_written(receiver: HttpReceiver) -> None:
    # Whoever sees a count move on /metrics (a test waiting on it, then reading the
    # alert history) must find the record it counts: a count ahead of its row was the
    # daemon test's race. Each record here sees the count of the one before it only.
    log, clock = CountsAtRecord(), FakeClock()
    d = Dispatcher(config(receiver.url, ", fallback_channels: [backup]"), clock, log,
                   rng=random.Random(7))  # fmt: skip
    log.dispatcher = d
    d.submit(alert_notice(state="resolved"))  # its firing never told: dropped at dedupe
    d.step()
    d.submit(alert_notice())
    d.step()  # delivered
    receiver.fail_next, receiver.fail_status = 1, 404
    d.submit(alert_notice(service="api"))
    d.step()  # failed for good (then the fallback channel told)
    restored = alert_notice(service="web")
    restored.id = "from-before-a-restart"
    late = DeliveryState(restored.id, "hook", "alert", AT - timedelta(hours=1), AT)
    d.restore([(restored, late)])  # its deadline passed while stopped: expired
    assert log.seen == [
        ("hook", "dropped", 0),
        ("hook", "delivered", 0),
        ("hook", "failed", 0),
        ("backup", "delivered", 0),
        ("hook", "expired", 0),
    ]
    stats = d.stats()
    assert [stats[channel][what] for channel, what, _ in log.seen] == [1, 1, 1, 1, 1]
