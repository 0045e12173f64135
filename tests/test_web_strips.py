"""Tile strips and day-bar cells are kept once drawn: drawn again, they are what a fresh
drawing of the same values gives, and new values draw anew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.analytics.slo import Counts
from server.analytics.uptime import days
from server.web import bars, charts
from server.web.charts import status_strip

H = timedelta(hours=1)
HOURS = [datetime(2026, 11, 22, 12, tzinfo=UTC) + i * H for i in range(24)]
PATTERNS: list[list[int | None]] = [
    [0] * 24,
    [0] * 23 + [2],
    [None] * 12 + [0] * 12,
    [2] + [0] * 23,
    [0, 1] * 12,
]


def test_a_tile_strip_drawn_again_is_the_one_drawn_fresh_for_its_own_codes() -> None:
    fresh = []
    for codes in PATTERNS:
        charts._kept_strip.cache_clear()
        fresh.append(status_strip(list(zip(HOURS, codes, strict=True))))
    assert len(set(fresh)) == len(PATTERNS)  # every pattern draws differently
    for _ in range(2):
        assert [status_strip(list(zip(HOURS, c, strict=True))) for c in PATTERNS] == fresh
    assert charts._kept_strip.cache_info().hits >= len(PATTERNS)  # the last round: all kept
    later = [h + H for h in HOURS]  # the next hour: other times in the hover texts
    assert status_strip(list(zip(later, PATTERNS[0], strict=True))) != fresh[0]


def test_long_timelines_are_drawn_but_not_kept() -> None:
    charts._kept_strip.cache_clear()
    week = [HOURS[0] + i * H for i in range(7 * 24)]
    status_strip([(at, 0) for at in week], width=760, height=18)
    assert charts._kept_strip.cache_info().currsize == 0


def test_a_day_bar_drawn_again_is_the_one_drawn_fresh_and_follows_new_counts() -> None:
    shown = days(HOURS[0].date(), 90)
    today, yesterday = shown[-1], shown[-2]
    counts = [
        {yesterday: Counts(1440, 1440), today: Counts(700, 720)},
        {yesterday: Counts(1440, 1440), today: Counts(719, 720)},  # today moved on
        {yesterday: Counts(1438.5, 1440), today: Counts(719, 720)},  # a late count
        {today: Counts(0, 3)},
    ]
    fresh = []
    for found in counts:
        bars._cell.cache_clear()
        fresh.append(bars.day_bar(shown, found, "Group <1>"))
    assert len(set(fresh)) == len(counts)
    for _ in range(2):
        assert [bars.day_bar(shown, found, "Group <1>") for found in counts] == fresh
    assert bars._cell.cache_info().hits > len(shown)  # past days were not drawn again
    assert bars.day_bar(shown, counts[0], "Group <1>", height=20) != fresh[0]
