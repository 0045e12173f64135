"""SLO figures an operator can read: a young service's budget counts the downtime seen,
and extreme targets keep their digits (real recorder rows in chDB, the real app)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckResult, Status
from server.analytics.slo import Counts, Objective, SloReport
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app, slo_view
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows

H = timedelta(hours=1)
NOW = datetime(2026, 11, 22, 12, 0, 3, tzinfo=UTC)
CONFIG = """
services:
  - {id: web99999, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 9},
     slo: {target: 99.999, window: 30d}}
  - {id: tiny, type: tcp, interval: 2s, tcp: {host: 127.0.0.1, port: 9},
     slo: {target: 99.9999999999, window: 1h30m}}
  - {id: steady, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 9},
     slo: {target: 99.9999, window: 1h}}
"""


class Svc:
    def __init__(self, sid: str) -> None:
        self.id, self.type, self.stack = sid, "tcp", "default"


def checks(sid: str, age: timedelta, every: timedelta, down: timedelta) -> list[Any]:
    """``sid`` checked every ``every`` for ``age`` up to NOW, FAILED during the last ``down``."""
    out, at = [], NOW - age
    while at < NOW:
        bad = at >= NOW - down
        out.append((sid, CheckResult(Status.FAILED if bad else Status.OK, "x"), at))
        at += every
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    store = EmbeddedStorage(tmp_path_factory.mktemp("young") / "db", "monitor")
    apply_schema(store, Target("monitor", retention_days=3650))
    sink = MemoryRows()
    recorder = Recorder(sink)
    rows = (
        checks("web99999", timedelta(minutes=20), timedelta(seconds=10), timedelta(minutes=2))
        + checks("tiny", timedelta(minutes=10), timedelta(seconds=2), timedelta(seconds=6))
        + checks("steady", timedelta(hours=3), timedelta(seconds=10), timedelta(seconds=0))
    )
    for sid, result, at in sorted(rows, key=lambda r: r[2]):
        recorder.record(Svc(sid), result, at)
    sink.insert_into(store)
    config = parse_config(CONFIG, "young.yaml", {})
    yield create_app(WebContext(config, store, FakeClock(NOW))).test_client()
    store.close()


def slo_of(c: FlaskClient, sid: str) -> dict[str, Any]:
    return c.get(f"/api/v1/services/{sid}").get_json()["slo"]  # type: ignore[no-any-return]


def sentence(c: FlaskClient, sid: str) -> str:
    page = c.get(f"/services/{sid}").get_data(as_text=True)
    found = re.search(r'<p class="slo[^"]*"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None
    return re.sub(r"<[^>]+>|\s+", " ", found.group(1))


def test_a_young_service_spends_the_downtime_seen_not_its_share_of_the_whole_window(
    app: FlaskClient,
) -> None:
    slo = slo_of(app, "web99999")
    assert slo["error_budget_minutes"] == pytest.approx(0.432)  # 0.001 % of 30 days
    assert slo["error_budget_spent_minutes"] == pytest.approx(2.0, abs=0.2)  # 12 checks of 10 s
    assert slo["error_budget_remaining_minutes"] == pytest.approx(0.432 - 2.0, abs=0.2)
    assert slo["covered_seconds"] == pytest.approx(20 * 60, abs=15)
    text = sentence(app, "web99999")
    over = re.search(r"overspent by ([\d.,]+) min", text)
    assert over is not None and 1.3 < float(over.group(1).replace(",", "")) < 1.8, text
    assert "checked so far" in text  # the page says the window is not full yet


def test_seconds_down_under_an_extreme_target_are_a_tenth_of_a_minute(app: FlaskClient) -> None:
    slo = slo_of(app, "tiny")
    assert slo["error_budget_spent_minutes"] == pytest.approx(0.1, abs=0.04)  # 3 checks of 2 s
    assert slo["error_budget_minutes"] == pytest.approx(9e-11)  # not rounded to 0.0
    text = sentence(app, "tiny")
    assert "99.9999999999%" in text and "SLO 100%" not in text
    assert "over 1,000x the budget" in text  # not -7692477863050%
    figures = text.split("available")[1].replace(",", "")  # after the target and SLI
    assert not re.search(r"[1-9]\d{6,}", figures), text  # no huge figure; 0.00000000009 is fine
    assert "0.00000000009 min" in text and not re.search(r"\de[-+]\d", text), text
    badge = app.get("/api/v1/services/tiny/badge?metric=slo").get_json()
    assert badge["label"] == "SLO 99.9999999999%" and badge["message"].endswith("overspent")


def test_availability_below_the_target_never_reads_as_the_target(app: FlaskClient) -> None:
    slo = slo_of(app, "tiny")
    assert slo["availability"] < 99.9999999999 and slo["met"] is False
    text = sentence(app, "tiny")
    shown = re.search(r"([\d.]+)%\s+available", text)
    assert shown is not None and float(shown.group(1)) < 99.9999999999, text
    for value in (99.99999999989, 99.999999999899, 99.99999999985):
        just_below = SloReport(Objective(99.9999999999, H), Counts(value, 100.0), None, None)
        assert float(slo_view.availability(just_below).rstrip("%")) < 99.9999999999, value
    met = SloReport(Objective(99.9, H), Counts(99.95, 100.0), None, None)
    assert slo_view.availability(met) == "99.95%"


def test_burn_rates_past_a_thousand_are_capped_in_words(app: FlaskClient) -> None:
    slo = slo_of(app, "tiny")
    assert slo["burn_rate_1h"] > 1e9  # the API keeps the figure, to 4 significant digits
    assert "burn rate over 1,000x over 1 h" in sentence(app, "tiny")


def test_a_service_as_old_as_its_window_keeps_the_workbook_figures(app: FlaskClient) -> None:
    slo = slo_of(app, "steady")
    assert slo["error_budget_remaining_percent"] == 100.0
    assert slo["error_budget_remaining_minutes"] == pytest.approx(6e-5)  # 0.0001 % of 60 min
    assert "checked so far" not in sentence(app, "steady")
