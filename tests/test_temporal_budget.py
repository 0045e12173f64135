"""The per-address budget of Temporal visibility calls (temporal.max_visibility_rps)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checkers import temporal_budget
from checkers.base import CheckContext, Status
from checkers.temporal_budget import Budget, BudgetExhausted
from checkers.temporal_count import CountSettings, TemporalCountChecker
from server.commands.check import NAGIOS_UNKNOWN
from server.config.models import Config
from server.runner import run_check
from tests.conftest import free_port, run_cli, wait_until
from tests.support.daemon import DaemonProcess
from tests.support.temporal_server import Harness
from tests.test_daemon import write_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_seconds_worth_goes_at_once_then_calls_are_spaced() -> None:
    clock = Clock()
    bucket = Budget("t:7233", rate=lambda: 4.0, clock=clock)
    waits = [bucket.reserve(deadline=clock.now + 60) for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.0, 0.25, 0.5]
    clock.now += 10  # idle: the bucket refills, but never beyond one burst
    assert [bucket.reserve(clock.now + 60) for _ in range(5)] == [0.0, 0.0, 0.0, 0.0, 0.25]


def test_a_call_that_would_wait_past_its_deadline_is_refused_and_takes_nothing() -> None:
    clock = Clock()
    bucket = Budget("t:7233", rate=lambda: 1.0, clock=clock)
    assert bucket.reserve(clock.now + 5) == 0.0
    with pytest.raises(BudgetExhausted, match=r"1 calls/s for t:7233 used up .* in 1\.0 s"):
        bucket.reserve(clock.now + 0.5)
    assert bucket.reserve(clock.now + 5) == 1.0  # the refused call left its slot free
    assert (bucket.granted, bucket.refused) == (2, 1)


def test_a_slow_rate_allows_one_call_at_a_time() -> None:
    clock = Clock()
    bucket = Budget("t:7233", rate=lambda: 0.5, clock=clock)
    assert [bucket.reserve(clock.now + 60) for _ in range(3)] == [0.0, 2.0, 4.0]


def test_the_configured_rate_is_read_on_every_call_and_must_be_positive() -> None:
    before = temporal_budget.rate()
    try:
        temporal_budget.configure(2)
        assert temporal_budget.rate() == 2.0
        with pytest.raises(ValueError):
            temporal_budget.configure(0)
    finally:
        temporal_budget.configure(before)
    assert Config().temporal.max_visibility_rps == temporal_budget.DEFAULT_MAX_VISIBILITY_RPS


@pytest.fixture
def slow_budget() -> Iterator[None]:
    before = temporal_budget.rate()
    temporal_budget.configure(0.1)  # one call per 10 s
    yield
    temporal_budget.configure(before)


def test_a_check_over_budget_is_unknown_and_says_why(
    temporal_server: Harness, slow_budget: None
) -> None:
    # A budget of its own: "localhost:PORT" is the session server under another name,
    # so the slow bucket does not hold up the other tests' "127.0.0.1:PORT".
    address = temporal_server.address.replace("127.0.0.1", "localhost")
    checker = TemporalCountChecker(CountSettings(address=address, count_query="TaskQueue = 'x'"))
    first = run_check(checker, CheckContext("count", datetime.now(UTC), 5))
    second = run_check(checker, CheckContext("count", datetime.now(UTC), 2))
    assert first.status == Status.OK
    assert second.status == Status.UNKNOWN
    assert f"visibility budget of 0.1 calls/s for {address} used up" in second.message
    assert "raise temporal.max_visibility_rps" in second.message
    bucket = temporal_budget.budget(address)
    assert (bucket.granted, bucket.refused) == (1, 1)


def test_the_daemon_and_the_check_command_apply_the_configured_budget(
    temporal_server: Harness, tmp_path: Path
) -> None:
    # temporal_stuck makes several visibility calls; at 0.1/s the second may go 10 s
    # after the first, past any deadline under 10 s. The 5 s timeout leaves a loaded
    # machine room to connect and make the first call (with 1 s, the check sometimes
    # timed out before it reached the budget).
    port = free_port()
    config = write_config(
        tmp_path,
        "  - {id: stuck, type: temporal_stuck, interval: 5s, timeout: 5s, temporal_stuck: "
        f"{{address: '{temporal_server.address}', query: \"TaskQueue = 'none'\"}}}}\n",
        extra="temporal:\n  max_visibility_rps: 0.1\n",
        port=port,
    )
    printed = run_cli("-m", "server.cli", "check", "stuck", "--config", str(config))
    assert printed.stdout.startswith("stuck: UNKNOWN (5) Temporal at "), printed.stdout
    assert "visibility budget of 0.1 calls/s" in printed.stdout
    assert printed.returncode == NAGIOS_UNKNOWN  # a check that could not see: Nagios UNKNOWN
    daemon = DaemonProcess(config, tmp_path)
    try:
        daemon.wait_for("storage ready")

        def message() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/services/stuck") as r:
                    return str(json.load(r).get("message", ""))
            except OSError:
                return ""

        assert wait_until(lambda: "visibility budget of 0.1 calls/s" in message(), 30), (
            daemon.output
        )
    finally:
        code, _ = daemon.stop()
    assert code == 0, daemon.output
