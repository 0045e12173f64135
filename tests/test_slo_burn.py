"""The ``slo_burn`` condition on real checks: recorded into chDB by the Recorder, counted
per window from storage, the alert engine and its real dispatcher to a loopback webhook.

Checks every 30 s against 99.9 % over 30 days: a 1-hour window holds 120 checks and
a 5-minute one 10, so the workbook's 14.4 over 1 h is 1.728 bad checks in the hour.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checkers.base import CheckResult, Status
from server.alerting.conditions import ConditionError, SloBurn, parse_condition
from server.alerting.engine import AlertEngine
from server.alerting.log import AlertLog
from server.analytics.burn import BurnCounts
from server.config import ConfigError
from server.notify.dispatcher import Dispatcher
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.alerting_harness import shared_receiver
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows

START = datetime(2026, 11, 20, tzinfo=UTC)
EVERY = 30.0  # seconds between checks
CONFIG = """
services:
  - {{id: shop, type: tcp, interval: 30s, tcp: {{host: 127.0.0.1, port: 1}},
     slo: {{target: 99.9, window: 30d}}}}
channels:
  hook: {{type: webhook, url: "{url}"}}
alerting: {{group_wait: 0s}}
alert_rules:
  - {{id: budget, service: shop, condition: slo_burn, severity: critical, channels: [hook]}}
  - {{id: slow-burn, service: shop, condition: "slo_burn 6h 30m > 6", severity: warning,
     channels: [hook]}}
"""


class Svc:
    id, type, stack = "shop", "tcp", "default"


class Rig(MemoryRows):
    """One daemon's worth: rows to chDB, the engine reading its windows from there."""

    def __init__(self, store: EmbeddedStorage, clock: FakeClock, path: str) -> None:
        self.store, self.clock, self.path = store, clock, path
        self.receiver = shared_receiver()
        self.config = parse_config(CONFIG.format(url=self.receiver.url + path), "slo.yaml", {})
        super().__init__()  # the rows, in memory: this daemon is the writer too
        self.log = AlertLog(self, store, clock)
        self.dispatcher = Dispatcher(self.config, clock, self.log, rng=random.Random(7))
        self.burn = BurnCounts(store)
        self.engine = AlertEngine(self.config, self.log, self.dispatcher, clock, slo=self.burn)
        self.quiet = Recorder(self)  # history written before the engine watches
        self.watched = Recorder(self, listener=self.engine)

    def flush(self) -> None:
        """What the writer does every second: every row into chDB."""
        self.log.sync()
        self.insert_into(self.store)

    def history(self, pattern: str) -> None:
        """Checks every 30 s, one per character (``.`` up, ``x`` FAILED), unwatched."""
        for mark in pattern:
            at = self.clock.advance(EVERY)
            self.quiet.record(Svc(), result(mark), at)
        self.flush()

    def checks(self, pattern: str) -> list[tuple[str, str]]:
        """Checks as the daemon makes them: recorded, evaluated, written, ticked, sent.
        Returns the alert transitions seen, ``(alert id, new state)``."""
        seen: list[tuple[str, str]] = []
        for mark in pattern:
            before = self.states()
            at = self.clock.advance(EVERY)
            self.watched.record(Svc(), result(mark), at)
            self.flush()
            self.engine.tick(at)
            self.dispatcher.step()
            seen += [(a, s) for a, s in self.states().items() if before.get(a) != s]
        return seen

    def tick(self, seconds: float) -> list[tuple[str, str]]:
        """Time passes without a check (the daemon ticks every second)."""
        before = self.states()
        self.engine.tick(self.clock.advance(seconds))
        self.dispatcher.step()
        return [(a, s) for a, s in self.states().items() if before.get(a) != s]

    def states(self) -> dict[str, str]:
        return {a["id"]: a["state"] for a in self.engine.alerts()}

    def told(self) -> list[tuple[str, str]]:
        return [
            (a["rule_id"], a["status"])
            for r in self.receiver.answered(self.path)
            for a in r.json["alerts"]
        ]


def result(mark: str) -> CheckResult:
    if mark == "x":
        return CheckResult(Status.FAILED, "connection refused")
    return CheckResult(Status.OK, "connected", response_time_ms=3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStorage]:
    db = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(db, Target("monitor"))
    yield db
    db.close()


def rig(store: EmbeddedStorage, clock: FakeClock | None = None) -> Rig:
    return Rig(store, clock or FakeClock(START), f"/{uuid.uuid4().hex[:10]}")


def test_slo_burn_pages_once_when_an_hour_and_five_minutes_both_burn_fast_then_resolves(
    store: EmbeddedStorage,
) -> None:
    r = rig(store)
    r.history("." * 720)  # six quiet hours
    # Two failures: 2 of 120 checks in the hour (burn 16.7 > 14.4) and 2 of 10 in five
    # minutes (200). The engine reads what is stored, so it sees them at the next check.
    assert r.checks("xx") == []
    assert r.checks(".") == [("budget:shop", "firing")]
    alert = r.engine.alert("budget:shop")
    assert alert is not None and alert.value == pytest.approx(16.667)
    # the slow pair (6 h and 30 min above 6) is quiet: 2 of 720 checks is a burn of 2.8
    assert "slow-burn:shop" not in r.states()
    # Burning stops: the five-minute window empties of failures after ten good checks
    # (the hour still burns at 16.7), and the alert resolves; told once each.
    assert r.checks("." * 8) == []
    assert r.checks("..") == [("budget:shop", "resolved")]
    assert r.told() == [("budget", "firing"), ("budget", "resolved")]


def test_the_tick_pages_within_one_refresh_without_waiting_for_the_next_check(
    store: EmbeddedStorage,
) -> None:
    r = rig(store)
    r.history("." * 720)
    assert r.checks("xx") == []  # evaluated before the second failure was stored
    assert r.tick(29) == []  # the last read is 29 s old: still good enough
    assert r.tick(1) == [("budget:shop", "firing")]  # 30 s: read again, 2 failures
    assert r.told() == [("budget", "firing")]


def test_slo_burn_stays_quiet_when_six_hours_burn_but_not_the_last_half_hour(
    store: EmbeddedStorage,
) -> None:
    r = rig(store)
    # 40 failures 3.5 to 5.5 hours ago: the six hours burn at 55.6 (> 6), the last 30
    # minutes (and the last hour) not at all; neither pair holds.
    r.history("." * 120 + ("x" + "." * 5) * 40 + "." * 360)
    assert r.checks("." * 12) == []
    assert r.told() == []
    assert value(r, "slow-burn:shop") == pytest.approx(55.556, abs=0.1)
    assert value(r, "budget:shop") == 0.0


def test_slo_burn_stays_quiet_when_five_minutes_burn_but_not_the_hour(
    store: EmbeddedStorage,
) -> None:
    r = rig(store)
    r.history("." * 720)
    # One failure: five minutes burn at 100 (> 14.4) and 30 minutes at 16.7 (> 6), but
    # the hour only at 8.3 (< 14.4) and the six hours at 1.4 (< 6).
    assert r.checks("x" + "." * 12) == []
    assert r.told() == []
    assert value(r, "budget:shop") == pytest.approx(8.333)
    assert value(r, "slow-burn:shop") == pytest.approx(1.389)


def value(r: Rig, alert_id: str) -> float | None:
    alert = r.engine.alert(alert_id)
    assert alert is not None
    return alert.value


def test_a_restarted_engine_reads_the_burning_hours_from_storage_and_fires_at_once(
    store: EmbeddedStorage,
) -> None:
    clock = FakeClock(START)
    first = rig(store, clock)
    # 50 failures over the last six hours, one every 7 minutes: every window of both
    # pairs burns at 70 or more (the newest failure is 3 minutes old)
    first.history(("." * 13 + "x") * 50 + "." * 5)
    second = rig(store, clock)  # a new daemon: nothing in memory
    assert second.checks(".") == [("budget:shop", "firing"), ("slow-burn:shop", "firing")]
    assert second.burn.reads == 1  # one read for both rules and all their windows


def test_without_storage_answering_the_last_read_stands(store: EmbeddedStorage) -> None:
    r = rig(store)
    r.history("." * 700 + "x" * 20)
    assert r.checks(".") == [("budget:shop", "firing"), ("slow-burn:shop", "firing")]
    reads = r.burn.reads
    store.close()  # ClickHouse gone: the alerts neither resolve nor fire anew
    r.clock.advance(600)
    r.engine.tick(r.clock.now())
    assert r.states() == {"budget:shop": "firing", "slow-burn:shop": "firing"}
    assert r.burn.reads == reads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slo_burn", SloBurn()),
        ("slo_burn 1h 5m > 14.4", "1:00:00 0:05:00 14.4"),
        ("SLO_BURN 3d > threshold", "3 days, 0:00:00 6:00:00 None"),
    ],
)
def test_slo_burn_parses_the_defaults_or_one_pair(text: str, expected: object) -> None:
    parsed = parse_condition(text)
    assert isinstance(parsed, SloBurn)
    if isinstance(expected, SloBurn):
        assert parsed == expected
    else:
        assert parsed.compare is not None
        assert f"{parsed.long} {parsed.short} {parsed.compare.value}" == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("slo_burn > 2", "needs its windows before >, e.g. slo_burn 1h 5m > 2; or slo_burn alone"),
        ("slo_burn < 2", 'compares with >, got "<"'),
        ("slo_burn 1h 5m 1m > 2", 'at most two windows \\(long, then short\\), got a third: "1m"'),
        ("slo_burn 1h 2h > 2", "must be shorter than the long one"),
        ("slo_burn soon > 2", '"soon" is not a window'),
        ("slo_burn 1h 5m >= 2", "compares with >"),
        ("slo_burn 1h 5m", '"slo_burn 1h 5m" needs > and a value, e.g. slo_burn 1h 5m > 14.4'),
    ],
)
def test_a_wrong_slo_burn_is_worded_as_its_fix(text: str, says: str) -> None:
    with pytest.raises(ConditionError, match=says):
        parse_condition(text)


def test_slo_burn_on_a_service_without_an_objective_is_a_config_error() -> None:
    text = """
services:
  - {id: shop, type: tcp, tcp: {host: 127.0.0.1, port: 1}, slo: {target: 99.9}}
  - {id: cart, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
alert_rules:
  - {id: budget, service: "*", condition: slo_burn}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "slo.yaml", {})
    report = str(caught.value)
    assert "alert_rules[0].condition" in report and 'without slo: "cart";' in report
    assert "slo: {target: 99.9, window: 30d}" in report and '"shop"' not in report


def test_a_rate_at_or_below_0_is_reported_with_what_its_windows_break() -> None:
    text = """
services:
  - {id: a, type: tcp, tcp: {host: 127.0.0.1, port: 1}, slo: {target: 99.9, window: 30d}}
alert_rules:
  - {id: r, service: a, condition: "slo_burn 40d 1d > 0"}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "slo.yaml", {})
    found = [str(p) for p in caught.value.problems]
    assert len(found) == 2, found
    assert "the long window (40d) is longer than the objective" in found[0]
    assert "slo_burn > 0 fires on one failed check" in found[1]
