"""Faults an attacker found in delivery, each at a real loopback receiver: trickling
receivers bounded per attempt, partial SMTP refusals, resolves after unconfirmed
firings, bursts past queue_size."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.core.backoff import ceiling
from server.core.clock import SystemClock
from server.notify import build_channel
from server.notify.base import ChannelError, Notice
from server.notify.dispatcher import Dispatcher
from server.notify.ledger import DeliveryState
from server.notify.retry import RetryPolicy
from server.periodic import ReportJob
from server.validation import parse_config
from tests.conftest import wait_until
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver, SmtpReceiver, TrickleServer
from tests.test_notify_channels import AT, item
from tests.test_notify_delivery import (
    Log,
    alert_notice,
    run_until_settled,
)
from tests.test_notify_delivery import config as delivery_config

QUICK = {"timeout": "1s", "response_timeout": "1s"}  # the hard limit per attempt: 2 s
BOUND = 15.0  # what "returned in bounded time" allows on a loaded machine; the trickle lasts 60 s


@pytest.fixture
def trickle(request: pytest.FixtureRequest) -> Iterator[TrickleServer]:
    server = TrickleServer(request.param)
    yield server
    server.close()


def http_channel(kind: str, url: str) -> Any:
    settings: dict[str, Any] = {
        "webhook": {"url": url},
        "slack": {"url": url},
        "pagerduty": {"url": url, "routing_key": "k"},
        "apprise": {"urls": [url.replace("http://", "json://")]},
    }[kind]
    return build_channel("c", kind, {**settings, **QUICK})


def timed_send(channel: Any, notice: Notice) -> tuple[ChannelError, float]:
    start = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        channel.send(notice)
    return caught.value, time.monotonic() - start


def one_notice(channel: str = "c") -> Notice:
    return Notice(channel, "alert", "down", [item()], AT, "http://127.0.0.1:8080", id="n1")


# -- B1: a hard limit per attempt --------------------------------------------------------
@pytest.mark.parametrize("trickle", ["body", "status"], indirect=True)
@pytest.mark.parametrize("kind", ["webhook", "slack", "pagerduty", "apprise"])
def test_a_trickling_receiver_is_cut_off_at_the_limit_per_attempt(
    kind: str, trickle: TrickleServer
) -> None:
    error, took = timed_send(http_channel(kind, trickle.url + "/hook"), one_notice())
    assert took < BOUND, f"{kind} held for {took:.1f}s by a trickle"
    assert "within 2s" in str(error) and "limit per attempt" in str(error)
    assert error.maybe_delivered and not error.permanent
    assert trickle.requests == 1


@pytest.mark.parametrize("trickle", ["smtp"], indirect=True)
def test_an_smtp_server_trickling_its_greeting_is_cut_off_at_the_limit(
    trickle: TrickleServer,
) -> None:
    channel = build_channel("m", "email", {"host": "127.0.0.1", "port": trickle.port,
                                           "security": "none", "from": "lb@example.org",
                                           "to": ["ops@example.org"], **QUICK})  # fmt: skip
    error, took = timed_send(channel, one_notice())
    assert took < BOUND
    assert "limit per attempt" in str(error)
    assert not error.maybe_delivered  # no message data was sent: not received


@pytest.mark.parametrize("trickle", ["close", "hangup"], indirect=True)
def test_a_connection_closed_mid_response_is_named_so_and_may_have_been_received(
    trickle: TrickleServer,
) -> None:
    error, _ = timed_send(http_channel("webhook", trickle.url), one_notice())
    assert "connection closed mid-response" in str(error)
    assert "cannot reach" not in str(error)
    assert error.maybe_delivered


@pytest.mark.parametrize("trickle", ["body"], indirect=True)
def test_notify_test_is_bounded_by_the_limit_per_attempt(
    trickle: TrickleServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "services:\n  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
        f"channels:\n  hook: {{type: webhook, url: '{trickle.url}', timeout: 1s, "
        "response_timeout: 1s}\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "notify", "test", "hook", "--config", str(config)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.monotonic() - start < BOUND + 10  # interpreter start-up on a loaded machine
    assert done.returncode == 1, done.stderr
    assert "limit per attempt" in done.stderr


def test_an_attempt_in_flight_shows_as_sending_not_queued() -> None:
    hung = HttpReceiver(hanging=True)
    cfg = parse_config(
        "services:\n  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
        f"channels:\n  hook: {{type: webhook, url: '{hung.url}/hook'}}\n"
        "alerting: {group_wait: 0s}\n",
        "t.yaml",
        {},
    )
    d = Dispatcher(cfg, SystemClock(), Log())
    d.start()
    try:
        d.submit(alert_notice())
        assert wait_until(lambda: hung.in_flight == 1, 10)
        stats = d.stats()["hook"]
        assert (stats["sending"], stats["queued"], stats["retrying"]) == (1, 0, 0)
        [state] = d.ledger.states("down:db", item().incident)
        assert state.as_dict()["state"] == "sending"
    finally:
        hung.release.set()
        d.stop(deadline=3)
        hung.close()
    assert len(hung.requests) == 1


# -- B2: some recipients refused ---------------------------------------------------------
@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver()
    yield server
    server.close()


def mail(smtp: SmtpReceiver, to: list[str]) -> Any:
    return build_channel("mail", "email", {"host": "127.0.0.1", "port": smtp.port,
                                           "security": "none", "from": "lb@example.org",
                                           "to": to})  # fmt: skip


TO = ["a@example.org", "b@example.org", "c@example.org"]


def test_a_recipient_refused_for_good_fails_the_notice_and_says_who_got_it(
    smtp: SmtpReceiver,
) -> None:
    smtp.refuse["b@example.org"] = "550 5.1.1 no such user"
    error, _ = timed_send(mail(smtp, TO), one_notice())
    assert "delivered to 2 of 3" in str(error)
    assert "b@example.org (550 5.1.1 no such user)" in str(error)
    assert error.permanent and error.maybe_delivered
    assert smtp.delivered_to() == ["a@example.org", "c@example.org"]


def test_a_recipient_refused_for_now_is_retried_alone(smtp: SmtpReceiver) -> None:
    channel = mail(smtp, TO)
    smtp.refuse["b@example.org"] = "451 4.3.0 try again later"
    smtp.refuse["c@example.org"] = "550 5.1.1 no such user"
    error, _ = timed_send(channel, one_notice())
    assert "delivered to 1 of 3" in str(error) and not error.permanent
    del smtp.refuse["b@example.org"]
    error, _ = timed_send(channel, one_notice())  # the retry: b only; c is given up
    assert "delivered to 2 of 3" in str(error) and error.permanent
    assert smtp.handler.rcpt_attempts == [*TO, "b@example.org"]
    assert smtp.delivered_to() == ["a@example.org", "b@example.org"]  # nobody twice


def test_partial_refusal_through_the_pipeline_delivers_each_recipient_once(
    smtp: SmtpReceiver,
) -> None:
    cfg = parse_config(
        "services:\n  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
        f"channels:\n  mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, "
        f"security: none, from: lb@example.org, to: [{', '.join(TO)}]}}\n"
        "alerting: {group_wait: 0s, retry_backoff: 1s}\n",
        "t.yaml",
        {},
    )
    log, clock = Log(), FakeClock()
    d = Dispatcher(cfg, clock, log, rng=random.Random(7))
    smtp.refuse["c@example.org"] = "452 4.2.2 mailbox full"
    d.submit(alert_notice(channel="mail"))
    d.step()
    assert [o[1] for o in log.outcomes] == ["retrying"]
    assert "delivered to 2 of 3" in log.outcomes[0][3]
    del smtp.refuse["c@example.org"]
    run_until_settled(d, clock, worker="mail")
    assert [o[1] for o in log.outcomes] == ["retrying", "delivered"]
    assert sorted(smtp.delivered_to()) == TO  # each exactly once


# -- B3: a firing that may have arrived is followed by its resolve -----------------------
@pytest.mark.parametrize("trickle", ["body"], indirect=True)
def test_a_firing_that_timed_out_is_unconfirmed_and_its_resolve_is_sent(
    trickle: TrickleServer,
) -> None:
    fine = HttpReceiver()
    cfg = parse_config(
        "services:\n  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
        f"channels:\n  hook: {{type: webhook, url: '{trickle.url}', timeout: 1s, "
        "response_timeout: 1s}\n"
        "alerting: {group_wait: 0s, retries: 0}\n",
        "t.yaml",
        {},
    )
    log = Log()
    d = Dispatcher(cfg, FakeClock(), log, rng=random.Random(7))
    d.submit(alert_notice())
    d.step()  # one attempt, cut off at the limit: the receiver read the whole request
    assert trickle.requests == 1
    assert [o[1] for o in log.outcomes] == ["unconfirmed"]
    # the receiver is answering again: the resolve reaches it
    worker = d.workers["hook"]
    worker.channel = build_channel("hook", "webhook", {"url": fine.url + "/hook"})
    d.submit(alert_notice(state="resolved"))
    d.step()
    try:
        assert [r.json["status"] for r in fine.requests] == ["resolved"]
        assert log.drops == []
        assert [o[1] for o in log.outcomes] == ["unconfirmed", "delivered"]
    finally:
        fine.close()


def test_a_firing_refused_before_sending_still_gets_no_resolve() -> None:
    down = HttpReceiver(failing=True)
    try:
        cfg = parse_config(
            "services:\n  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
            f"channels:\n  hook: {{type: webhook, url: '{down.url}/hook'}}\n"
            "alerting: {group_wait: 0s, retries: 0}\n",
            "t.yaml",
            {},
        )
        log = Log()
        d = Dispatcher(cfg, FakeClock(), log, rng=random.Random(7))
        d.submit(alert_notice())
        d.step()
        down.failing = False
        d.submit(alert_notice(state="resolved"))
        d.step()
        assert [o[1] for o in log.outcomes] == ["failed"]  # a 500 is a clear "no"
        assert log.drops == [("hook", "down:db", "resolved")]
        assert down.requests == []
    finally:
        down.close()


# -- B10: a burst past queue_size ---------------------------------------------------------
def test_a_burst_of_three_times_queue_size_is_delivered_whole_and_once() -> None:
    receiver = HttpReceiver(failing=True)  # the burst piles up behind a receiver that is down
    try:
        cfg = parse_config(
            "services:\n  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
            f"channels:\n  hook: {{type: webhook, url: '{receiver.url}/hook'}}\n"
            "alerting: {group_wait: 0s, queue_size: 5, retry_backoff: 1s}\n",
            "t.yaml",
            {},
        )
        log, clock = Log(), FakeClock()
        d = Dispatcher(cfg, clock, log, rng=random.Random(7))
        services = [f"s{i}" for i in range(15)]
        for service in services:
            d.submit(Notice("hook", "alert", f"rule-{service}", [item(service=service)], AT))
            d.step()
        assert len(log.saved) == 15 and len(d.workers["hook"].outbox) == 15
        assert d.stats()["hook"]["backlogged"] == 1
        receiver.failing = False
        run_until_settled(d, clock)
        delivered = [r.json["alerts"][0]["service_id"] for r in receiver.requests]
        assert sorted(delivered) == sorted(services)  # 15 sent, none lost, none twice
        assert len({r.headers["Idempotency-Key"] for r in receiver.requests}) == 15
        assert [o for o in log.outcomes if o[1] in ("failed", "dropped")] == []
        assert d.stats()["hook"]["delivered"] == 15
    finally:
        receiver.close()


# -- B6: backoff arithmetic stays finite ------------------------------------------------
@pytest.mark.parametrize("failures", [0, 1, 61, 1025, 10**9, 10**30])
def test_backoff_ceilings_stay_finite_and_bounded_for_any_failure_count(failures: int) -> None:
    assert 0.0 <= ceiling(1.0, 300.0, failures) <= 300.0
    assert ceiling(10.0, 1.0, failures) == 1.0  # a max below the first delay still caps
    policy = RetryPolicy(backoff=3600.0, max_backoff=86400.0)
    assert 0.0 <= policy.delay(failures, random.Random(1)) <= 86400.0
    job = ReportJob.__new__(ReportJob)
    job.failures = failures
    assert 0.0 <= job.retry_delay() <= 3600.0


# -- B9: resuming after a downtime longer than the delivery deadline ----------------------
@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.close()


def restored(notice: Notice, state: str, queued: datetime, notice_id: str) -> tuple[Any, Any]:
    notice.id = notice_id
    deadline = queued + timedelta(hours=1)
    state_ = DeliveryState(notice_id, notice.channel, notice.kind, queued, deadline, state, queued)
    return notice, state_


def test_after_a_long_downtime_a_notice_past_its_deadline_expires_unsent(
    hook: HttpReceiver,
) -> None:
    clock = FakeClock(AT + timedelta(hours=5))  # restarted five hours after the queueing
    log = Log()
    d = Dispatcher(delivery_config(hook.url), clock, log, rng=random.Random(7))
    resumed = d.restore([restored(alert_notice(), "retrying", AT, "f1")])
    d.step()
    assert resumed == 0 and hook.arrivals == []
    assert [(o[0], o[1]) for o in log.outcomes] == [("f1", "expired")]
    assert d.stats()["hook"]["expired"] == 1
    assert d.ledger.states("down:db", item().incident)[0].state == "expired"
    d.submit(alert_notice(state="resolved"))  # its resolve: the firing was never heard
    d.step()
    assert hook.arrivals == []


@pytest.mark.parametrize(("firing", "sent"), [("delivered", 1), ("unconfirmed", 1), ("failed", 0)])
def test_after_a_long_downtime_a_resolve_is_sent_if_its_firing_was_heard(
    hook: HttpReceiver, firing: str, sent: int
) -> None:
    clock = FakeClock(AT + timedelta(hours=5))
    log = Log()
    d = Dispatcher(delivery_config(hook.url), clock, log, rng=random.Random(7))
    records = [
        restored(alert_notice(), firing, AT, "f1"),
        restored(alert_notice(state="resolved"), "retrying", AT + timedelta(minutes=5), "r1"),
    ]
    d.restore(records)
    d.step()
    assert [r.json["status"] for r in hook.requests] == ["resolved"] * sent
    assert [(o[0], o[1]) for o in log.outcomes] == [("r1", "delivered" if sent else "expired")]
