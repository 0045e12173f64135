"""Alert rule conditions: the grammar, its errors, and comparisons."""

from __future__ import annotations

import pytest

from server.alerting.conditions import (
    AbsentCondition,
    Comparison,
    ConditionError,
    ConsecutiveFailures,
    LogErrors,
    MetricCondition,
    StatusCondition,
    parse_condition,
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("status >= FAILED", StatusCondition(Comparison(">=", 2.0))),
        ("status==ok", StatusCondition(Comparison("==", 0.0))),
        ("status != 4", StatusCondition(Comparison("!=", 4.0))),
        ("status > threshold", StatusCondition(Comparison(">", None))),
        (
            "metric response_time_ms > 500",
            MetricCondition("response_time_ms", "last", Comparison(">", 500.0)),
        ),
        (
            "avg metric cpu_percent>=threshold",
            MetricCondition("cpu_percent", "avg", Comparison(">=", None)),
        ),
        (
            "max metric disk_used_percent < 90.5",
            MetricCondition("disk_used_percent", "max", Comparison("<", 90.5)),
        ),
        ("absent", AbsentCondition()),
        ("consecutive_failures >= 3", ConsecutiveFailures(Comparison(">=", 3.0))),
        ("log_errors > threshold", LogErrors(Comparison(">", None))),
    ],
)
def test_conditions_parse(text: str, parsed: object) -> None:
    assert parse_condition(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty condition; expected one of:"),
        ("status", '"status" needs an operator and a value'),
        ("status >= BROKEN", '"BROKEN" is not threshold or a status (OK, DEGRADED'),
        ("status >= 9", '"9" is not threshold or a status'),
        ("metric > 5", '"metric" needs a metric name'),
        ("metric cpu >> 5", '"metric cpu" needs an operator and a value'),
        ("log_errors > many", '"many" is not a number or threshold'),
        ("absent 3", '"absent" takes no operands'),
        ("cpu > 90", 'unknown condition "cpu > 90"'),
    ],
)
def test_bad_conditions_say_what_would_be_right(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert message in str(caught.value)


def test_comparison_uses_rule_threshold_when_value_is_threshold() -> None:
    assert Comparison(">", None).holds(5, threshold=4)
    assert not Comparison(">", None).holds(5, threshold=6)
    assert Comparison("<=", 2.0).holds(2, threshold=99)
