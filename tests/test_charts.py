"""Units from one place, readable axes, and captions that say what a sparkline shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from server.analytics.slo import Counts
from server.core.measures import UNITS, unit, unit_of
from server.web.axes import nice_step, value_axis
from server.web.bars import day_bar
from server.web.charts import line_chart, pct, sparkline

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def test_service_status_columns_have_fixed_units_whatever_a_metric_says() -> None:
    assert unit_of("memory_usage").name == "percent"  # RSS / total memory x 100, not MB
    assert unit_of("cpu_usage").name == "percent"
    assert unit_of("response_time_ms", "seconds").name == "ms"
    assert unit_of("spool_bytes", "bytes").name == "bytes"
    assert unit_of("x", "%").name == "percent" and unit_of("x", "s").name == "seconds"
    assert unit_of("x", "widgets").format(3) == "3 widgets"


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("bytes", 23_000_000, "21.9 MiB"), ("ms", 2500, "2,500 ms"), ("ms", 25_000, "25 s"),
     ("percent", 0.09, "0.09%"), ("rows", 12_345, "12.3 thousand rows"), ("count", 7, "7"),
     ("seconds", 7300, "2.03 h"), ("days", 12.5, "12.5 days")],
)  # fmt: skip
def test_values_are_shown_in_the_largest_unit_that_fits(
    name: str, value: float, shown: str
) -> None:
    assert UNITS[name].format(value) == shown


@pytest.mark.parametrize(
    ("low", "high", "name", "labels", "title"),
    [(0, 97.3, "percent", ["0", "20", "40", "60", "80", "100"], "%"),
     (0, 0.093, "percent", ["0", "0.02", "0.04", "0.06", "0.08", "0.1"], "%"),
     (0, 23_000_000, "bytes", ["0", "5", "10", "15", "20", "25"], "MiB"),
     (0, 123_456, "rows", ["0", "25", "50", "75", "100", "125"], "thousand rows"),
     (0, 1812, "ms", ["0", "500", "1,000", "1,500", "2,000"], "ms"),
     (0, 2, "count", ["0", "1", "2"], ""),
     (3, 3, "count", ["3", "4"], ""),
     (-12, 30, "", ["-20", "-10", "0", "10", "20", "30"], "")],
)  # fmt: skip
def test_axis_ticks_are_round_steps_in_one_display_unit(
    low: float, high: float, name: str, labels: list[str], title: str
) -> None:
    axis = value_axis(low, high, UNITS[name])
    assert list(axis.labels) == labels and axis.title == title
    assert axis.low <= low and axis.high >= high


def test_nice_steps_are_one_two_two_and_a_half_or_five_times_a_power_of_ten() -> None:
    for span in (0.0031, 0.7, 1, 3, 9.99, 42, 1234, 9e9):
        step = nice_step(span, 4)
        mantissa = step / 10 ** int(f"{step:e}".split("e")[1])
        assert mantissa in (1, 2, 2.5, 5) and span / 4 <= step < span


def test_y_labels_fit_the_left_margin_and_the_unit_is_written_once() -> None:
    points = [{"time": T0 + timedelta(minutes=5 * i), "avg": 2e9 + i * 1e7, "max": None}
              for i in range(12)]  # fmt: skip
    svg = str(line_chart(points, start=T0, end=T0 + timedelta(hours=1), unit=UNITS["bytes"],
                         name="spool_bytes"))  # fmt: skip
    ticks = re.findall(r'<text class="axis tick" x="([\d.]+)"[^>]*>([^<]+)<', svg)
    assert ticks and all(label.replace(".", "").isdigit() for _, label in ticks)
    assert all(float(x) - 7 * len(label) >= 0 for x, label in ticks)  # starts inside the box
    assert svg.count(">GiB<") == 1
    assert "avg 1.89 GiB" in svg  # hover text in the same display unit


def test_sparklines_are_captioned_with_what_they_show() -> None:
    errors = str(sparkline([0, 3, 1, 0], "errors per hour", UNITS["count"]))
    assert "errors per hour: 0 to 3" in errors and "ms" not in errors
    times = str(sparkline([40, 45.5], "response time, last 24 h", UNITS["ms"]))
    assert "response time, last 24 h: 40 ms to 45.5 ms" in times


def test_an_unknown_unit_spelling_is_kept_as_written() -> None:
    assert unit(" MB ").name == "MB" and unit("%").symbol == "%"


@pytest.mark.parametrize(
    ("low", "high", "name"),
    [(0, 1e-15, ""), (1e-15, 1e-15, ""), (-2.5e-15, 0, ""), (0, 4.3e-8, "ms"),
     (0, 3e-12, "percent"), (0, 7e-5, "bytes"), (1.0000001, 1.0000002, ""),
     (5e-300, 5e-300, ""), (0, 1e15, "count")],
)  # fmt: skip
def test_ticks_of_tiny_or_nearly_flat_series_are_distinct_and_readable(
    low: float, high: float, name: str
) -> None:
    axis = value_axis(low, high, UNITS[name])
    assert len(set(axis.labels)) == len(axis.labels) >= 2, axis.labels
    assert all(len(label) <= 12 and "e" not in label for label in axis.labels), axis.labels
    assert "e-" not in axis.title and "e-" not in axis.format(high), (axis.title, axis.format(high))
    assert axis.low <= low and axis.high >= high


def test_a_chart_of_a_1e_minus_15_metric_counts_in_a_power_of_ten() -> None:
    points = [{"time": T0 + timedelta(minutes=5 * i), "avg": 1e-15, "max": 1e-15}
              for i in range(6)]  # fmt: skip
    svg = str(line_chart(points, start=T0, end=T0 + timedelta(hours=1), unit=UNITS[""],
                         name="u"))  # fmt: skip
    ticks = re.findall(r'<text class="axis tick"[^>]*>([^<]+)<', svg)
    assert ticks == ["0", "0.2", "0.4", "0.6", "0.8", "1"], ticks
    assert ">\N{MULTIPLICATION SIGN} 10⁻¹⁵<" in svg  # the power written once, as the title
    assert "avg 0.000000000000001" in svg and "e-15" not in svg


def test_an_uptime_short_of_100_never_reads_100_and_one_above_0_never_reads_0() -> None:
    """One failed check in 25,000 is 99.996 % up: "100.00%" beside "1 of 25,000 checks
    down" would contradict itself (tiles, status rows, day bars and badges use pct)."""
    assert [pct(v) for v in (99.996, 100.0, 99.95, 0.001, 0.0, 50.0)] == [
        "99.996%", "100.00%", "99.95%", "0.001%", "0.00%", "50.00%"]  # fmt: skip
    one_bad = {T0.date(): Counts(24_999, 25_000)}
    bar = str(day_bar([T0.date()], one_bad, "shop"))
    assert "99.996% up, 1 of 25,000 checks down" in bar and "100.00%" not in bar


@pytest.mark.parametrize(
    "span",
    [timedelta(seconds=0), timedelta(seconds=2), timedelta(seconds=50), timedelta(minutes=2),
     timedelta(hours=1), timedelta(days=1), timedelta(days=2), timedelta(days=30)],
)  # fmt: skip
def test_time_axis_labels_never_repeat_whatever_the_span(span: timedelta) -> None:
    start = datetime(2026, 12, 1, 14, 32, 5, tzinfo=UTC)
    svg = line_chart([{"time": start, "avg": 1.0, "max": 1.0}], start=start, end=start + span,
                     unit=unit_of("x"), name="x")  # fmt: skip
    labels = re.findall(r'class="axis time"[^>]*>([^<]+)<', str(svg))
    assert labels and len(set(labels)) == len(labels), labels
    assert len(labels) == 5 if span.total_seconds() >= 4 else len(labels) == (3 if span else 1)
