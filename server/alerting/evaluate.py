"""Evaluate a parsed condition against a service's history: (holds, value).

One function per condition type, found through :data:`EVALUATORS`. The value
is what the condition measured (status code, metric aggregate, missed
intervals, run length, error count); it goes into alert_events and messages.

``for`` means two things, by condition: for windowed conditions (``avg``/``max``
/``min`` metric, ``log_errors``) it is the window the value is computed over, and
the alert fires as soon as the windowed value crosses; for the others it is how
long the condition must hold (pending) before the alert fires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from server.alerting.conditions import (
    AbsentCondition,
    Condition,
    ConsecutiveFailures,
    LogErrors,
    MetricCondition,
    StatusCondition,
)
from server.alerting.history import History

Outcome = tuple[bool, float | None]
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda values: sum(values) / len(values),
    "max": max,
    "min": min,
    "last": lambda values: values[-1],
}


def is_windowed(condition: Condition) -> bool:
    if isinstance(condition, MetricCondition):
        return condition.aggregate != "last"
    return isinstance(condition, LogErrors)


def _status(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    if h.last_result is None:
        return False, None
    value = float(h.last_result.status)
    return c.compare.holds(value, threshold), value


def _metric(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    since = now - window if c.aggregate != "last" and window else None
    values = h.metric_values(c.name, since)
    if not values:
        return False, None
    value = AGGREGATES[c.aggregate](values)
    return c.compare.holds(value, threshold), value


def _absent(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    if h.last_seen is None:
        return False, None
    missed = (now - h.last_seen).total_seconds() / h.interval
    return missed >= threshold, round(missed, 2)


def _consecutive(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    value = float(h.consecutive_failures)
    return c.compare.holds(value, threshold), value


def _log_errors(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    since = now - window if window else (h.last_seen or now)
    value = float(h.error_count(since))
    return c.compare.holds(value, threshold), value


EVALUATORS: dict[type, Callable[[Any, History, float, timedelta, datetime], Outcome]] = {
    StatusCondition: _status,
    MetricCondition: _metric,
    AbsentCondition: _absent,
    ConsecutiveFailures: _consecutive,
    LogErrors: _log_errors,
}


def evaluate(
    condition: Condition, history: History, threshold: float, window: timedelta, now: datetime
) -> Outcome:
    return EVALUATORS[type(condition)](condition, history, threshold, window, now)
