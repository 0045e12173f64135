"""SLO arithmetic (the SRE workbook's figures) and exact uptime counts over chDB."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.analytics import uptime
from server.analytics.slo import (
    BURN_ALERTS,
    Counts,
    Objective,
    availability,
    burn_rate,
    burn_threshold,
    burning,
    report,
)
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.web import history
from server.web.queries import ServiceView

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
MONTH = Objective(99.9, 30 * D)
START = datetime(2026, 11, 1, tzinfo=UTC)
STEP = 7  # seconds between checks: never on an hour boundary twice in a row


def test_the_error_budget_of_three_nines_over_30_days_is_43_2_minutes() -> None:
    assert MONTH.budget == pytest.approx(0.001)
    assert MONTH.budget_minutes == pytest.approx(43.2)


def test_burn_thresholds_match_the_workbook_table() -> None:
    """Table 5-8: 2 % of a 30-day budget in 1 h is 14.4, 5 % in 6 h is 6, 10 % in 3 d is 1."""
    assert [round(a.threshold(MONTH), 6) for a in BURN_ALERTS] == [14.4, 6.0, 1.0]
    assert burn_threshold(0.02, H, 7 * D) == pytest.approx(3.36)


def test_budget_left_and_burn_rate_from_counts() -> None:
    half_spent = Counts(good=9995, total=10000)  # 0.05 % bad against a 0.1 % budget
    assert availability(half_spent) == pytest.approx(99.95)
    assert burn_rate(half_spent, MONTH) == pytest.approx(0.5)
    assert report(MONTH, {MONTH.window: half_spent}).budget_remaining == pytest.approx(0.5)
    overspent = report(MONTH, {MONTH.window: Counts(990, 1000), H: Counts(60, 60)})
    assert overspent.budget_remaining == pytest.approx(-9.0)
    assert overspent.remaining_minutes == pytest.approx(-9 * 43.2)
    assert overspent.met is False and overspent.burn_1h == 0.0 and overspent.burn_6h is None


def test_no_checks_is_no_verdict_rather_than_a_perfect_score() -> None:
    empty = report(MONTH, {})
    assert empty.availability is None and empty.budget_remaining is None and empty.met is None
    assert empty.as_dict()["error_budget_remaining_minutes"] is None


def test_a_burn_alert_needs_its_long_and_short_window_both_above_the_rate() -> None:
    page_1h, page_6h = BURN_ALERTS[0], BURN_ALERTS[1]
    fast = {H: Counts(985, 1000), 5 * M: Counts(83, 100)}  # 15x and 170x
    assert burning(MONTH, fast) is page_1h
    recovered = {H: Counts(985, 1000), 5 * M: Counts(100, 100)}  # the short window resets it
    assert burning(MONTH, recovered) is None
    slow = {6 * H: Counts(9930, 10000), 30 * M: Counts(993, 1000), H: Counts(993, 1000),
            5 * M: Counts(99, 100)}  # 7x everywhere: above 6, below 14.4  # fmt: skip
    assert burning(MONTH, slow) is page_6h
    assert burning(MONTH, {}) is None


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    """Three days of checks every 7 s for two services; 'a' fails when a hash says so."""
    storage = EmbeddedStorage(tmp_path_factory.mktemp("slo") / "db", "monitor")
    apply_schema(storage, Target("monitor"))
    storage.execute(
        f"""
        INSERT INTO monitor.service_status
            (service_id, timestamp, status_code, message, service_type, stack, details)
        SELECT if(number % 2 = 0, 'a', 'b'),
               {{start:DateTime64(3, 'UTC')}} + toIntervalSecond(intDiv(number, 2) * {STEP}),
               if(number % 2 = 0, [0, 0, 0, 1, 2, 5, 4, 3][cityHash64(number) % 8 + 1], 0),
               'x', 'tcp', 'default', '{{}}'
        FROM numbers(2 * intDiv(3 * 86400, {STEP}))
        """,
        {"start": START},
    )
    yield storage
    storage.close()


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (START + 7 * H + 13 * M, START + 40 * D + 2 * H + 1 * M),
        (START + 10 * M, START + 50 * M),
        (START, START + 3 * D),
        (START + 23 * H + 5 * M, START + D + 2 * H),
    ],
)
def test_a_period_splits_into_raw_edges_whole_hours_and_whole_days_once(
    start: datetime, end: datetime
) -> None:
    parts = uptime.split(start, end)
    pieces = sorted(parts.raw + parts.hourly + parts.daily)
    assert pieces[0][0] == start and pieces[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))  # no gap, no overlap
    assert all(b - a < H for a, b in parts.raw) and len(parts.raw) <= 2
    assert all(a.minute == 0 and b.minute == 0 for a, b in parts.hourly)
    assert all(a.hour == 0 and b.hour == 0 and b - a >= D for a, b in parts.daily)
    assert sum((b - a for a, b in parts.hourly), timedelta()) < 2 * D


def raw_counts(store: EmbeddedStorage, start: datetime, end: datetime) -> Counts:
    row = store.query(
        "SELECT count() AS n, countIf(status_code IN (0, 1)) AS up FROM monitor.service_status "
        "WHERE service_id = 'a' AND timestamp >= {s:DateTime64(3, 'UTC')} "
        "AND timestamp < {e:DateTime64(3, 'UTC')}",
        {"s": start, "e": end},
    )[0]
    return Counts(int(row["up"]), int(row["n"]))


def periods() -> list[tuple[datetime, datetime]]:
    rng = random.Random(14)
    fixed = [
        (START, START + 3 * D),  # whole hours only
        (START + 10 * M, START + 50 * M),  # inside one hour
        (START + 50 * M, START + 70 * M),  # across one boundary
        (START + 59 * M + timedelta(seconds=59.5), START + H),  # half a second
        (START - D, START + 90 * M),  # starts before the first check
        (START + 2 * D + 23 * H + 30 * M, START + 4 * D),  # ends after the last
        (START + H, START + H),  # empty
    ]
    random_ones = []
    for _ in range(12):
        a = START + timedelta(seconds=rng.uniform(0, 3 * 86400))
        random_ones.append((a, a + timedelta(seconds=rng.uniform(1, 2 * 86400))))
    return fixed + random_ones


def test_uptime_counts_equal_a_scan_of_every_raw_check_for_any_period(
    store: EmbeddedStorage,
) -> None:
    wanted = periods()
    found = uptime.counts(store, ["a", "b", "never-checked"], wanted)
    assert found["a"] == [raw_counts(store, s, e) for s, e in wanted]
    assert found["never-checked"] == [Counts(0, 0)] * len(wanted)
    assert found["b"][0] == Counts(3 * 86400 // STEP, 3 * 86400 // STEP)


def test_tile_slos_from_summaries_equal_the_raw_checks_on_whole_hours_and_days(
    store: EmbeddedStorage,
) -> None:
    now = START + 3 * D  # where the data ends: today and this hour hold what was checked
    goals = {"a": Objective(99.0, D), "b": Objective(99.0, 2 * D)}
    views = {
        "a": ServiceView("a", "a", "tcp", "default", checked=True),
        "b": ServiceView("b", "b", "tcp", "default", checked=True),
    }
    history.load(store_query(store), views, now, goals)
    a = views["a"].slo
    assert a is not None and a.window == raw_counts(store, now - D, now)
    assert a.burn_1h == burn_rate(raw_counts(store, now - H, now), goals["a"])
    assert a.burn_6h == burn_rate(raw_counts(store, now - 6 * H, now), goals["a"])
    assert views["b"].slo is not None and views["b"].slo.budget_remaining == 1.0


def test_a_windows_first_partial_day_or_hour_counts_pro_rata(store: EmbeddedStorage) -> None:
    now = START + 3 * D
    views = {"a": ServiceView("a", "a", "tcp", "default", checked=True)}
    history.load(store_query(store), views, now, {"a": Objective(99.0, D + 11 * H + 23 * M)})
    found, exact = views["a"].slo.window, raw_counts(store, now - D - 11 * H - 23 * M, now)  # type: ignore[union-attr]
    assert abs(found.total - exact.total) <= 1 and found.total != int(found.total)
    views = {"a": ServiceView("a", "a", "tcp", "default", checked=True)}
    history.load(store_query(store), views, now, {"a": Objective(99.0, 2 * H + 15 * M)})
    found, exact = views["a"].slo.window, raw_counts(store, now - 2 * H - 15 * M, now)  # type: ignore[union-attr]
    assert abs(found.total - exact.total) <= 1 and found.total != int(found.total)


def store_query(store: EmbeddedStorage) -> Callable[..., list[dict[str, Any]]]:
    def q(sql: str, **params: Any) -> list[dict[str, Any]]:
        return store.query(sql.replace("{db}", store.database), params)

    return q


def test_daily_bars_sum_services_per_group_and_day_and_per_service(
    store: EmbeddedStorage,
) -> None:
    day = START.date()
    days = uptime.daily(store, {"both": ["a", "b"], "only-b": ["b"]}, day, day + D)
    found = days.by_day
    per_day = 86400 // STEP + 1  # 12,343 checks start in a day of 86,400 s every 7 s
    assert found["only-b"][day].total in (per_day - 1, per_day)
    day_a = raw_counts(store, START, START + D)
    assert found["both"][day] == day_a + found["only-b"][day]
    assert set(found["both"]) == {day, day + D}
    two_days = raw_counts(store, START, START + 2 * D)
    assert days.by_service["a"] == two_days
    # b is in two groups: counted once, as its days are
    assert days.by_service["b"].total == sum(c.total for c in found["only-b"].values())
