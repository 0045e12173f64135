"""Baselines learned in chDB from generated history with a known daily shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checkers.base import CheckResult, Metric, Status
from server.analytics.baselines import Baselines, LearnedDegraded
from server.config.models import BaselinesConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.validation import parse_config
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock

NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)  # a Monday
NOISE_STD = (21**2 - 1) ** 0.5 / 12**0.5  # uniform integers -10..10


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    """28 days of checks every 5 minutes: 100 ms at night, 150 ms from 09:00 to 18:00."""
    storage = EmbeddedStorage(tmp_path_factory.mktemp("baselines") / "db", "monitor")
    apply_schema(storage, Target("monitor"))
    storage.execute(
        """
        INSERT INTO monitor.service_status
            (service_id, timestamp, status_code, message, service_type, stack, details,
             response_time_ms)
        SELECT 'api', ts, 0, 'ok', 'http', 'default', '{}',
               toUInt32(if(toHour(ts) >= 9 AND toHour(ts) < 18, 150, 100)
                        + (cityHash64(number) % 21) - 10)
        FROM (SELECT {start:DateTime64(3, 'UTC')} + toIntervalSecond(number * 300) AS ts, number
              FROM numbers(28 * 288))
        """,
        {"start": NOW - timedelta(days=28)},
    )
    yield storage
    storage.close()


@pytest.fixture(scope="module")
def baselines(store: EmbeddedStorage) -> Baselines:
    learned = Baselines(BaselinesConfig())
    assert learned.compute(store, NOW) == 7 * 24
    return learned


def test_thresholds_match_the_generated_distribution(baselines: Baselines) -> None:
    day = baselines.get("api", "response_time_ms", NOW)  # Monday 10:00
    night = baselines.get("api", "response_time_ms", NOW.replace(hour=3))
    assert day is not None and night is not None
    assert day.samples == 4 * 12
    assert abs(day.mean - 150) < 2.5 and abs(night.mean - 100) < 2.5
    assert abs(day.stddev - NOISE_STD) < 1.5
    assert day.upper == pytest.approx(day.mean + 3 * day.stddev)
    assert 155 <= day.p99 <= 160


def test_a_baseline_without_enough_samples_is_not_used(store: EmbeddedStorage) -> None:
    strict = Baselines(BaselinesConfig(min_samples=49))
    strict.load(store)
    assert strict.get("api", "response_time_ms", NOW) is None


def test_a_spike_fires_an_anomaly_alert(baselines: Baselines) -> None:
    h = Harness(
        """
alert_rules:
  - {id: odd, service: api, condition: "anomaly response_time_ms z > threshold", threshold: 4,
     channels: [hook]}
""",
        FakeClock(NOW),
    )
    h.engine.baselines = baselines
    h.engine.configure(h.config)
    h.engine.observe("api", CheckResult(Status.OK, "ok", response_time_ms=155), NOW)
    assert h.state("odd:api") == "inactive"
    h.engine.observe("api", CheckResult(Status.OK, "ok", response_time_ms=260), NOW)
    alert = h.engine.alert("odd:api")
    assert alert is not None and alert.state.value == "firing"
    assert alert.value is not None and alert.value > 15  # z of (260 - 150) / ~6


def test_learned_degraded_switches_on_after_its_for_and_off_again(baselines: Baselines) -> None:
    config = parse_config(
        """
services:
  - {id: api, type: http, learned_degraded: true, learned_degraded_for: 10m,
     http: {url: "http://127.0.0.1:9/"}}
""",
        "t.yaml",
        {},
    )
    service = config.services[0]
    adjust = LearnedDegraded(baselines).adjust
    slow = CheckResult(Status.OK, "200 OK", response_time_ms=400)
    assert adjust(service, slow, NOW).status is Status.OK  # above p99, not for 10 min yet
    later = adjust(service, slow, NOW + timedelta(minutes=10))
    assert later.status is Status.DEGRADED
    assert "above the learned p99" in later.message
    fast = CheckResult(Status.OK, "200 OK", response_time_ms=140)
    assert adjust(service, fast, NOW + timedelta(minutes=11)).status is Status.OK
    assert adjust(service, slow, NOW + timedelta(minutes=12)).status is Status.OK  # timer restarts


def test_the_service_page_shades_the_band_and_marks_anomalies(
    store: EmbeddedStorage, baselines: Baselines
) -> None:
    from server.web import WebContext, create_app

    storage = store
    storage.execute(
        "INSERT INTO monitor.service_status (service_id, timestamp, status_code, message, "
        "service_type, stack, details, response_time_ms) VALUES "
        "('api', {at:DateTime64(3, 'UTC')}, 0, 'ok', 'http', 'default', '{}', 400)",
        {"at": NOW + timedelta(minutes=1)},
    )
    config = parse_config(
        "services:\n  - {id: api, type: http, http: {url: 'http://127.0.0.1:9/'}}\n", "t.yaml", {}
    )
    clock = FakeClock(NOW + timedelta(minutes=5))
    app = create_app(WebContext(config, storage, clock, baselines=baselines))
    page = app.test_client().get("/services/api?range=6h").get_data(as_text=True)
    chart = page.split('data-series="response_time_ms"')[1].split("</svg>")[0]
    assert '<polygon class="band"' in chart
    assert chart.count('class="point anomaly"') == 1
    assert "(anomaly)" in chart and "normal up to" in chart


def test_each_http_check_is_one_sample_though_it_also_reports_a_metric_of_the_same_name(
    store: EmbeddedStorage,
) -> None:
    """HTTP checks store response_time_ms as a column and as a metric; 81 checks gave 160."""
    rows: list[tuple[str, tuple[Any, ...]]] = []

    class Sink:
        def add(self, table: str, row: tuple[Any, ...]) -> None:
            rows.append((table, row))

    class Http:
        id, type, stack = "shop", "http", "default"

    recorder = Recorder(Sink())
    hour = NOW.replace(minute=0)
    for i in range(81):  # 81 checks in one hour of the week
        ms = 100 + i % 7
        result = CheckResult(Status.OK, "200 OK", response_time_ms=ms,
                             metrics=[Metric("response_time_ms", ms, "ms")])  # fmt: skip
        recorder.record(Http(), result, hour - timedelta(days=7) + timedelta(seconds=40 * i))
    for table, columns in WRITTEN_TABLES.items():
        found = [row for t, row in rows if t == table]
        if found:
            store.insert(table, columns, found)
    learned = Baselines(BaselinesConfig())
    learned.compute(store, NOW)
    baseline = learned.get("shop", "response_time_ms", hour)
    assert baseline is not None and baseline.samples == 81
