"""A day bar draws one cell per day, in the band its uptime reaches, and says the period's
uptime in words: the exact markup of a small bar, and each band's lower edge.

:mod:`server.web.bars` alone (pure functions); the status page draws these.
"""

from __future__ import annotations

from datetime import date

import pytest

from server.analytics.slo import Counts
from server.web import bars
from server.web.bars import band, day_bar

DAYS = [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]


@pytest.mark.parametrize(
    ("uptime", "css", "words"),
    [
        (None, "u-none", "no checks"),
        (100.0, "u-full", "no failed checks"),
        (99.999, "u-high", "at least 99.9% up"),
        (99.9, "u-high", "at least 99.9% up"),  # each band's lowest value is in it
        (99.89, "u-mid", "at least 99% up"),
        (99.0, "u-mid", "at least 99% up"),
        (98.99, "u-low", "at least 95% up"),
        (95.0, "u-low", "at least 95% up"),
        (94.99, "u-down", "below 95% up"),
        (0.0, "u-down", "below 95% up"),
    ],
)
def test_an_uptime_is_drawn_in_the_best_band_it_reaches(
    uptime: float | None, css: str, words: str
) -> None:
    assert band(uptime) == (css, words)


def test_a_bar_is_a_cell_a_day_its_caption_the_uptime_of_the_days_shown() -> None:
    """A day of 1,000 checks with 10 down, a day without, a day whose count is zero;
    a day before the bar (all down) is not the bar's."""
    bars._cell.cache_clear()
    counts = {DAYS[0]: Counts(990, 1000), DAYS[2]: Counts(0, 0), date(2026, 11, 19): Counts(0, 10)}
    assert str(day_bar(DAYS, counts, "Group <1>")) == (
        '<figure class="days"><svg class="daybar" viewBox="0 0 12 28" '
        'preserveAspectRatio="none" role="img" aria-label="Group &lt;1&gt;, 3 days: 99.00% up">'
        '<rect class="u-mid" x="0" width="3" height="28" data-day="2026-11-20"><title>'
        "2026-11-20: 99.00% up, 10 of 1,000 checks down (at least 99% up)</title></rect>"
        '<rect class="u-none" x="4" width="3" height="28" data-day="2026-11-21"><title>'
        "2026-11-21: no checks</title></rect>"
        '<rect class="u-none" x="8" width="3" height="28" data-day="2026-11-22"><title>'
        "2026-11-22: no checks</title></rect></svg><figcaption><span>2026-11-20</span>"
        '<span class="overall">3 days: 99.00% up</span><span>2026-11-22</span></figcaption>'
        "</figure>"
    )


def test_a_bar_without_checks_says_so_and_its_height_is_the_callers() -> None:
    bar = str(day_bar(DAYS[:1], {}, "web", height=20))
    assert 'viewBox="0 0 4 20"' in bar and 'height="20"' in bar
    assert 'aria-label="web, 1 days: no checks"' in bar
    assert '<span class="overall">1 days: no checks</span>' in bar


def test_the_caption_sums_the_checks_of_every_day_not_the_days_uptimes() -> None:
    """A day of 10 checks all down and one of 990 all up: 99% of checks, not 50%."""
    counts = {DAYS[0]: Counts(0, 10), DAYS[1]: Counts(990, 990)}
    bar = str(day_bar(DAYS[:2], counts, "api"))
    assert '<span class="overall">2 days: 99.00% up</span>' in bar
    assert '<rect class="u-down" x="0"' in bar and '<rect class="u-full" x="4"' in bar
    assert "2026-11-20: 0.00% up, 10 of 10 checks down (below 95% up)" in bar
    assert "2026-11-21: 100.00% up, 0 of 990 checks down (no failed checks)" in bar
