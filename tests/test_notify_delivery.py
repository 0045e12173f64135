"""Delivery workers: retries with backoff, grouping, bounds, and hung receivers."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from server.alerting.engine import AlertEngine
from server.config import parse_config
from server.core.clock import SystemClock
from server.notify import build_channel
from server.notify.base import Notice
from server.notify.dispatcher import ChannelWorker, Dispatcher, Outbox, RetryPolicy
from server.recorder import Recorder
from server.scheduler import CheckScheduler
from tests.conftest import free_port, wait_until
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver
from tests.test_notify_channels import item
from tests.test_scheduler import ListSink

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Outcomes:
    def __init__(self) -> None:
        self.results: list[tuple[Notice, str | None, int]] = []

    def __call__(self, notice: Notice, error: str | None, attempts: int) -> None:
        self.results.append((notice, error, attempts))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.close()


def worker(
    url: str, clock: Any, outcomes: Outcomes, *, group_wait: float = 0, retries: int = 5,
    capacity: int = 100, name: str = "hook",
) -> ChannelWorker:  # fmt: skip
    channel = build_channel(name, "webhook", {"url": url, "timeout": "2s"})
    outbox = Outbox(group_wait, RetryPolicy(retries, 1.0, 60.0), capacity, random.Random(7))
    return ChannelWorker(channel, outbox, clock, outcomes)


def alert_notice(service: str = "db", state: str = "firing") -> Notice:
    return Notice("hook", "alert", "down", [item(state, service=service)], AT)


def test_a_receiver_failing_three_times_gets_the_notification_once(
    receiver: HttpReceiver,
) -> None:
    clock, outcomes = FakeClock(), Outcomes()
    w = worker(receiver.url, clock, outcomes)
    receiver.fail_next = 3
    w.submit(alert_notice())
    delays = []
    while not outcomes.results:
        assert w.step() <= 1
        due = w.outbox.next_due()
        if due is not None:
            delays.append(due - clock.monotonic())
            clock.advance(due - clock.monotonic())
    assert receiver.attempts == 4
    assert len(receiver.requests) == 1
    assert outcomes.results[0][1:] == (None, 4)
    # exponential backoff with jitter: each delay within [0.5 s, 2^(n-1) s]
    assert all(0.5 <= d <= 2**i for i, d in enumerate(delays))


def test_delivery_gives_up_after_its_retries_and_reports_the_last_error(
    receiver: HttpReceiver,
) -> None:
    clock, outcomes = FakeClock(), Outcomes()
    w = worker(receiver.url, clock, outcomes, retries=2)
    receiver.fail_next = 10
    w.submit(alert_notice())
    for _ in range(5):
        w.step()
        clock.advance(60)
    assert receiver.attempts == 3
    _, error, attempts = outcomes.results[0]
    assert attempts == 3
    assert error is not None and "HTTP 500" in error


def test_notices_of_one_rule_within_group_wait_become_one_message(
    receiver: HttpReceiver,
) -> None:
    clock, outcomes = FakeClock(), Outcomes()
    w = worker(receiver.url, clock, outcomes, group_wait=0.5)
    w.submit(alert_notice("db"))
    clock.advance(0.2)
    w.submit(alert_notice("api"))
    w.submit(alert_notice("db", "resolved"))  # later news of the same alert replaces it
    assert w.step() == 0  # still inside group_wait
    clock.advance(0.3)
    assert w.step() == 1
    body = receiver.wait_for(1)[0].json
    assert [(a["service_id"], a["status"]) for a in body["alerts"]] == [
        ("db", "resolved"),
        ("api", "firing"),
    ]


def test_a_full_outbox_drops_the_oldest_and_reports_it(receiver: HttpReceiver) -> None:
    clock, outcomes = FakeClock(), Outcomes()
    w = worker(receiver.url, clock, outcomes, group_wait=10, capacity=2)
    for service in ("a", "b", "c"):
        w.submit(Notice("hook", "alert", f"rule-{service}", [item(service=service)], AT))
    assert len(outcomes.results) == 1
    dropped, error, _ = outcomes.results[0]
    assert dropped.group_key == "rule-a"
    assert error is not None and "full" in error


def test_a_hung_channel_does_not_hold_up_another_channel() -> None:
    hung, fine = HttpReceiver(hanging=True), HttpReceiver()
    outcomes = Outcomes()
    clock = SystemClock()
    dispatcher = Dispatcher(
        {
            "slow": worker(hung.url, clock, outcomes, name="slow"),
            "fast": worker(fine.url, clock, outcomes, name="fast"),
        }
    )
    dispatcher.start()
    try:
        dispatcher.submit(Notice("slow", "alert", "down", [item()], AT))
        dispatcher.submit(Notice("fast", "alert", "down", [item()], AT))
        fine.wait_for(1, seconds=5)
        assert hung.requests == []
    finally:
        hung.release.set()
        dispatcher.stop(deadline=3)
        hung.close()
        fine.close()


def test_a_hung_receiver_does_not_delay_checks() -> None:
    hung = HttpReceiver(hanging=True)
    closed = free_port()  # a real TCP check of a port nobody listens on: FAILED every time
    config = parse_config(
        f"""
services:
  - {{id: db, type: tcp, interval: 200ms, tcp: {{host: 127.0.0.1, port: {closed}}}}}
channels:
  hook: {{type: webhook, url: "{hung.url}", timeout: 20s}}
alert_rules:
  - {{id: down, service: db, condition: "status >= FAILED", channels: [hook],
     repeat_interval: 200ms}}
alerting: {{group_wait: 0s}}
""",
        "t.yaml",
        {},
    )
    sink, clock, outcomes = ListSink(), SystemClock(), Outcomes()
    dispatcher = Dispatcher({"hook": worker(hung.url, clock, outcomes)})
    engine = AlertEngine(config, sink, dispatcher, clock)
    scheduler = CheckScheduler(Recorder(sink, listener=engine), clock, max_workers=2)
    dispatcher.start()
    scheduler.sync(list(config.services))
    scheduler.start()
    try:
        assert wait_until(lambda: hung.attempts >= 1)  # the receiver now holds the worker
        before = len(sink.statuses("db"))
        started = time.monotonic()
        assert wait_until(lambda: len(sink.statuses("db")) >= before + 5, seconds=5)
        assert time.monotonic() - started < 3  # 5 checks at 200 ms, not stuck behind 20 s
    finally:
        scheduler.shutdown(wait_seconds=1)
        hung.release.set()
        dispatcher.stop(deadline=2)
        hung.close()
