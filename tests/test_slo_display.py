"""SLO figures on pages and badges say what the API says: a target is shown with the
digits it was configured with (never rounded onto 100 %, never as 1e-10), the share of
budget left never rounds onto 100 %, no figure is in scientific notation, and a
badge is green only for an objective that is met (real recorder rows in chDB, the
real app, and the wording functions on their own)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckResult, Status
from server.analytics.slo import Counts, Objective, SloReport, report
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app, slo_view
from server.web.api_history import SHADES
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows

NOW = datetime(2026, 11, 22, 12, 0, 3, tzinfo=UTC)
MONTH = timedelta(days=30)
# id: (target as configured, as shown: 99.99999999999998 is the float of ...99, as in the API)
TARGETS = {"nines": ("99.99999999999999", "99.99999999999999"),
           "nines8": ("99.99999999999998", "99.99999999999999"),
           "low": ("0.0000000001", "0.0000000001"), "three": ("99.90", "99.9")}  # fmt: skip
CONFIG = (
    "services:\n"
    + "".join(
        f"  - {{id: {sid}, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 9}}, "
        f"slo: {{target: {target}, window: 1h}}}}\n"
        for sid, (target, _) in TARGETS.items()
    )
    + """
  - {id: newfail, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 9},
     slo: {target: 99.9, window: 30d}}
  - {id: flappy, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 9},
     slo: {target: 99.9, window: 30d}}
  - {id: fine, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 9},
     slo: {target: 99.9, window: 1h}}
"""
)


class Svc:
    def __init__(self, sid: str) -> None:
        self.id, self.type, self.stack = sid, "tcp", "default"


def checks(sid: str, age: timedelta, bad: Any) -> list[tuple[str, CheckResult, datetime]]:
    """``sid`` checked every 10 s for ``age`` up to NOW; ``bad(i)`` says which fail."""
    out, at, i = [], NOW - age, 0
    while at < NOW:
        out.append((sid, CheckResult(Status.FAILED if bad(i) else Status.OK, "x"), at))
        at, i = at + timedelta(seconds=10), i + 1
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    store = EmbeddedStorage(tmp_path_factory.mktemp("slodisplay") / "db", "monitor")
    apply_schema(store, Target("monitor", retention_days=3650))
    sink = MemoryRows()
    recorder = Recorder(sink)
    rows = [r for sid in TARGETS for r in checks(sid, timedelta(hours=2), lambda i: False)]
    rows += checks("newfail", timedelta(minutes=3), lambda i: True)  # failing since its first
    rows += checks("flappy", timedelta(minutes=20), lambda i: i % 2 == 0)
    rows += checks("fine", timedelta(hours=2), lambda i: False)
    for sid, result, at in sorted(rows, key=lambda r: r[2]):
        recorder.record(Svc(sid), result, at)
    sink.insert_into(store)
    config = parse_config(CONFIG, "slodisplay.yaml", {})
    yield create_app(WebContext(config, store, FakeClock(NOW))).test_client()
    store.close()


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>|\s+", " ", html)


@pytest.mark.parametrize("sid", sorted(TARGETS))
def test_a_target_is_shown_with_its_configured_digits_everywhere(
    app: FlaskClient, sid: str
) -> None:
    configured, shown_as = TARGETS[sid]
    want = f"SLO {shown_as}%"
    api = app.get(f"/api/v1/services/{sid}").get_json()["slo"]
    assert api["target"] == float(configured) == float(shown_as)
    page = text_of(app.get(f"/services/{sid}").get_data(as_text=True))
    tile = re.search(
        rf'data-service="{sid}".*?<p class="slo[^"]*">([^<]*)<',
        app.get("/").get_data(as_text=True),
        re.S,
    )
    label = app.get(f"/api/v1/services/{sid}/badge?metric=slo").get_json()["label"]
    assert tile is not None
    for shown in (page, tile.group(1), label):
        assert want in shown and "SLO 100%" not in shown, shown
        assert not re.search(r"\de[-+]?\d", shown), shown


@pytest.mark.parametrize(
    "target", [99.99999999999999, 99.99999999999998, 99.9999999999999, 1e-10, 5e-324, 99.95,
               99.9, 50.0, 100 - 1e-13, 1.5e-7],
)  # fmt: skip
def test_a_displayed_target_reads_back_as_the_same_number(target: float) -> None:
    shown = slo_view.target(SloReport(Objective(target, MONTH), Counts(1, 1), None, None))
    assert float(shown.rstrip("%")) == target and "e" not in shown, shown


@pytest.mark.parametrize("sid", ["newfail", "flappy", "fine", "nines", "low", "three"])
def test_a_badge_is_red_when_the_api_says_missed_and_green_only_when_met(
    app: FlaskClient, sid: str
) -> None:
    api = app.get(f"/api/v1/services/{sid}").get_json()["slo"]
    badge = app.get(f"/api/v1/services/{sid}/badge?metric=slo").get_json()
    left = api["error_budget_remaining_percent"]
    if api["met"] is False or left < 0:
        assert badge["color"] == SHADES["red"], (api, badge)
        assert "missed" in badge["message"] or "overspent" in badge["message"], badge
    else:
        assert (
            badge["color"] in (SHADES["brightgreen"], SHADES["yellow"])
            and " met" in badge["message"]
        ), badge
    shown = re.search(r"([\d.,]+)% budget left", badge["message"])
    if shown is not None:  # the share the API gives, rounded, never onto 100
        assert float(shown.group(1)) == pytest.approx(left, abs=0.5), (api, badge)
        assert shown.group(1) != "100" or left == 100


def test_a_service_failing_since_its_first_check_is_a_red_badge(app: FlaskClient) -> None:
    api = app.get("/api/v1/services/newfail").get_json()["slo"]
    assert api["availability"] == 0 and api["met"] is False
    badge = app.get("/api/v1/services/newfail/badge?metric=slo").get_json()
    assert badge["color"] == SHADES["red"] and badge["message"].startswith("0.00% missed"), badge


def test_a_budget_share_short_of_100_is_not_shown_as_100() -> None:
    """99.68 % of the budget left: a mature service with 3.2 bad checks in a million."""
    r = SloReport(Objective(99.9, MONTH), Counts(1e6 - 3.2, 1e6), 0.0, 0.0)
    assert r.budget_remaining == pytest.approx(0.9968)
    for shown in (slo_view.budget(r), slo_view.short(r), slo_view.badge(r)[0]):
        assert "100%" not in shown and "99.7%" in shown, shown


def test_a_burn_rate_of_exactly_1000_is_1000x_not_over() -> None:
    all_bad = report(Objective(99.9, MONTH), {MONTH: Counts(0, 10), timedelta(hours=1):
                     Counts(0, 10), timedelta(hours=6): Counts(999, 1000)})  # fmt: skip
    assert all_bad.burn_1h == 1000.0
    assert slo_view.burn(all_bad) == "burn rate 1,000x over 1 h, 1x over 6 h"
    faster = report(Objective(99.99, MONTH), {timedelta(hours=1): Counts(0, 10)})
    assert slo_view.burn(faster).startswith("burn rate over 1,000x over 1 h")


def test_tiny_budgets_are_written_out_without_an_exponent() -> None:
    r = SloReport(Objective(99.9999999999, MONTH), Counts(10, 10), 0.0, 0.0)  # 4.32e-08 min
    shown = slo_view.budget(r)
    assert shown.startswith("0.0000000432 min of 0.0000000432 min (100%)"), shown
    assert not re.search(r"\de[-+]?\d", shown + slo_view.short(r)), shown


def test_a_young_service_names_the_span_checked_in_seconds_under_a_minute() -> None:
    r = SloReport(Objective(99.9, MONTH), Counts(0, 2), None, None, timedelta(minutes=0.21))
    shown = slo_view.budget(r)
    assert "downtime counted over the 13s checked so far" in shown, shown
    assert shown.startswith("43.0 min of 43.2 min (99.5%) error budget left"), shown


def test_without_checks_no_time_is_covered() -> None:
    r = report(Objective(99.9, MONTH), {}, timedelta(hours=5))
    assert r.as_dict()["covered_seconds"] == 0 and r.as_dict()["checks"] == 0


@pytest.mark.parametrize(
    ("target", "window", "good", "total", "whole"),
    [
        (99.0, MONTH, 1e6 - 0.8, 1e6, "432.0 min"),
        (50.0, timedelta(days=1), 1e6 - 0.1, 1e6, "12.0 h"),
        # a budget under a minute is judged by its own digits too
        (99.9999999999, MONTH, 2e15 - 1, 2e15, "0.0000000432 min"),
    ],
)
def test_time_left_short_of_the_whole_budget_is_not_shown_as_the_whole_budget(
    target: float, window: timedelta, good: float, total: float, whole: str
) -> None:
    r = SloReport(Objective(target, window), Counts(good, total), 0.0, 0.0)
    assert 0 < 1 - r.budget_remaining < 1e-3
    for shown in (slo_view.budget(r), slo_view.short(r)):
        left = re.search(r"([\d,.]+ (?:min|h))(?: of [^(]+)? \(", shown)
        assert left and left.group(1) != whole, shown


WRITTEN = ["0.0000000001", "0.00000000000000000000000001", "0.00001", "12.5", "50", "99.9",
           "99.95", "99.9999999999", "99.99999999999999"]  # fmt: skip


@pytest.mark.parametrize("written", WRITTEN)
def test_availability_is_shown_to_every_decimal_the_target_was_written_with(written: str) -> None:
    """At least two; zeros included, so 0 % beside a target of 0.0000000001 % reads
    ``0.0000000000%``, not ``0.00%``; and no target is too fine to show (no exception)."""
    places = max(2, len(written.split(".")[1]) if "." in written else 0)
    target = float(written)
    for good, total in [(0.0, 10.0), (10.0, 10.0), (1.0, 3.0), (2.0, 3.0), (999.0, 1000.0)]:
        shown = SloReport(Objective(target, timedelta(days=30)), Counts(good, total), None, None)
        text = slo_view.availability(shown)
        assert re.fullmatch(rf"\d+\.\d{{{places}}}%", text), (written, good, total, text)
        if 100 * good / total < target:  # a miss never reads as the target or above
            assert float(text.rstrip("%")) < target, (written, text)
        assert slo_view.short(shown)  # the whole sentence is worded, at any target
