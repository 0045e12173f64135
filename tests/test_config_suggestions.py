"""A config report's suggested fix is itself accepted.

The SLO checks compute "at most"/"at least" figures and example ``slo_burn`` pairs;
with ``retention_days: 1`` they once suggested "a window of 0s at most" (attack on
issue 14). Over a grid of objectives, intervals, retentions and rules, each figure a
report suggests is applied to the file, and that report must then be gone.
"""

from __future__ import annotations

import itertools
import re

import pytest

from server.core.units import parse_duration
from server.validation import ConfigError, parse_config

INTERVALS = ["30s", "600s", "2h", "1d"]
WINDOWS = ["1h", "1440m", "7d", "29d"]
RETENTIONS = [1, 2, 8, 30]
RULES = [
    "slo_burn",
    "slo_burn 1h 5m > 14.4",
    "slo_burn 360m > 6",
    "slo_burn 3d 1d > 1",
    "slo_burn 2880m 120m > 1",
    "slo_burn 60m 5m > 1",
    "slo_burn 30d > 1",
]
GRID = list(itertools.product(INTERVALS, WINDOWS, RETENTIONS, RULES))


def config(interval: str, window: str, days: int, rule: str) -> str:
    return (
        f"clickhouse: {{retention_days: {days}}}\n"
        "services:\n"
        f"  - {{id: shop, type: tcp, interval: {interval}, tcp: {{host: 127.0.0.1, port: 9}},\n"
        f"     slo: {{target: 99.9, window: {window}}}}}\n"
        "alert_rules:\n"
        f'  - {{id: budget, service: shop, condition: "{rule}"}}\n'
    )


def problems(text: str) -> dict[str, list[str]]:
    """Messages by key path (``alert_rules[0].condition``)."""
    try:
        parse_config(text, "f.yaml", environ={})
    except ConfigError as exc:
        found: dict[str, list[str]] = {}
        for p in exc.problems:
            key, _, message = str(p).partition(" ")[2].partition(": ")
            found.setdefault(key, []).append(message)
        return found
    return {}


@pytest.mark.parametrize(("interval", "window", "days", "rule"), GRID)
def test_every_suggested_window_and_retention_is_accepted(
    interval: str, window: str, days: int, rule: str
) -> None:
    found = problems(config(interval, window, days, rule))
    for key, messages in found.items():
        for message in messages:
            for figure in re.findall(r"(\S+) at most", message):
                assert parse_duration(figure) >= parse_duration("1m"), message
            kept = re.search(r"retention_days to at least (\d+)|keep (\d+) days", message)
            if kept:
                more = int(kept.group(1) or kept.group(2))
                after = problems(config(interval, window, more, rule))
                assert not [m for m in after.get(key, []) if "history kept" in m], message
            example = re.search(r"e\.g\. (slo_burn \S+ \S+ > [0-9.]+)", message)
            if example and key == "alert_rules[0].condition":
                after = problems(config(interval, window, days, example.group(1)))
                # one day kept fits no pair at all: that is its own report, asking for days
                left = [m for m in after.get(key, []) if days > 1 or "history kept" not in m]
                assert not left, (message, left)
            shorten = re.search(r"shorten it to (\S+) at most", message)
            if shorten:
                after = problems(config(interval, shorten.group(1), days, rule))
                assert "services[0].slo.window" not in after, message


def test_one_day_kept_asks_for_more_days_never_a_zero_window() -> None:
    found = problems(config("30s", "1h", 1, "slo_burn"))
    assert found["services[0].slo.window"] == [
        "1h reaches the edge of the history kept (clickhouse.retention_days: 1; the day a "
        "window starts in is dropped whole at midnight, so a window needs one day less than "
        "is kept): no window fits in 1 day kept; set clickhouse.retention_days to at least 2"
    ]
    assert (
        "slo_burn (the workbook's pairs: 1h 5m and 6h 30m): the long window (6h) reaches "
        "past the history kept (clickhouse.retention_days: 1); no pair of windows fits in "
        "1 day kept; set clickhouse.retention_days to at least 2"
    ) in found["alert_rules[0].condition"]


def test_windows_are_quoted_as_written_not_normalised() -> None:
    found = problems(config("600s", "1440m", 30, "slo_burn 2880m 120m > 1"))
    assert found["alert_rules[0].condition"] == [
        'slo_burn 2880m 120m > 1: the long window (2880m) is longer than the objective of "shop" '
        "(1440m): its burn rate would measure a period the objective does not cover; use a long "
        "window of 1440m at most, e.g. slo_burn 1440m 2h > 1 (the whole budget spent at this "
        "pace over the objective's window)"
    ]
    found = problems(config("600s", "29d", 30, "slo_burn 60m 5m > 1"))
    assert found["alert_rules[0].condition"] == [
        'slo_burn 60m 5m > 1: the short window (5m) is shorter than the interval of "shop" '
        "(600s), so it often holds no check; use a short window of at least 600s, e.g. "
        "slo_burn 60m 10m > 1, or check more often"
    ]


def test_an_interval_as_long_as_the_objective_asks_to_check_more_often() -> None:
    found = problems(config("1d", "1440m", 30, "slo_burn 1h 5m > 14.4"))
    assert found["alert_rules[0].condition"] == [
        'slo_burn 1h 5m > 14.4: the short window (5m) is shorter than the interval of "shop" '
        "(1d), so it often holds no check; check more often: no short window of at least the "
        "interval fits under a long window of 1440m at most"
    ]
