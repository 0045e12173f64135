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

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from server.alerting.conditions import (
    OPS,
    AbsentCondition,
    AnomalyCondition,
    Condition,
    ConsecutiveFailures,
    ErrorPatternRate,
    LogErrors,
    MetricCondition,
    NewErrorPattern,
    SloBurn,
    StatusCondition,
)
from server.alerting.history import History
from server.analytics.slo import PAGE_ALERTS, BurnAlert, burn_rate
from server.core import status
from server.core.redact import redact

Outcome = tuple[bool, float | None]
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda values: sum(values) / len(values),
    "max": max,
    "min": min,
    "last": lambda values: values[-1],
}


def is_log_driven(condition: Condition) -> bool:
    """Conditions pushed logs can change between checks: evaluated on every tick too."""
    return isinstance(condition, LogErrors | NewErrorPattern | ErrorPatternRate)


def is_timed(condition: Condition) -> bool:
    """Time alone can change it (pushed logs, checks leaving a window): every tick too."""
    return is_log_driven(condition) or isinstance(condition, SloBurn)


def is_windowed(condition: Condition) -> bool:
    if isinstance(condition, MetricCondition):
        return condition.aggregate != "last"
    return is_log_driven(condition)


def _status(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    if h.last_result is None:
        return False, None
    # Statuses compare by severity, not by code: ``status >= FAILED`` must not match
    # STARTING (3), STOPPED (4) or UNKNOWN (5). See server/core/status.py.
    observed = int(h.last_result.status)
    target = threshold if c.compare.value is None else c.compare.value
    try:
        holds = OPS[c.compare.op](status.severity(observed), status.severity(int(target)))
    except ValueError:  # a threshold that is not a status code never matches
        holds = False
    return holds, float(observed)


def _metric(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    since = now - window if c.aggregate != "last" and window else None
    values = h.metric_values(c.name, since)
    if not values:
        return False, None
    value = AGGREGATES[c.aggregate](values)
    if since is not None and (h.first_result is None or h.first_result > since):
        # an average over the first sample or two is not an average over the window:
        # judge only once results cover the whole window (after a start or a reload)
        return False, value
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


NEW_PATTERN_WINDOW = timedelta(hours=1)
RATE_WINDOW = timedelta(minutes=5)


def new_patterns(h: History, window: timedelta, now: datetime) -> list[int]:
    """Fingerprints first seen (fleet-wide) within ``window`` (default 1 h) that this
    service logged within it, in the order it logged them."""
    since = now - (window or NEW_PATTERN_WINDOW)
    return [fp for fp in h.pattern_counts(since) if h.book.get(fp, now) >= since]


def new_pattern_message(h: History, window: timedelta, now: datetime) -> str:
    """The message of a firing ``new_error_pattern`` alert: which patterns are new
    (masked: a notice's ``{{ message }}`` says what to look at)."""
    found = new_patterns(h, window, now)
    named = [h.texts.get(fp) or f"fingerprint {fp}" for fp in found[:3]]
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    label = "new error pattern" if len(found) == 1 else "new error patterns"
    return redact(f"{label}: " + "; ".join(named) + more)


def _new_pattern(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    new = len(new_patterns(h, window, now))
    return new > 0, float(new)


def _pattern_rate(
    c: Any, h: History, threshold: float, window: timedelta, now: datetime
) -> Outcome:
    span = window or RATE_WINDOW
    counts = h.pattern_counts(now - span)
    value = round(max(counts.values(), default=0) / (span.total_seconds() / 60), 3)
    return c.compare.holds(value, threshold), value


def _anomaly(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    if h.baselines is None:
        return False, None
    if c.metric == "error_logs":
        hour = now.replace(minute=0, second=0, microsecond=0)
        value = float(h.error_count(hour))
    else:
        values = h.metric_values(c.metric, None)
        if not values:
            return False, None
        value = values[-1]
    baseline = h.baselines.get(h.service_id, c.metric, now)
    if baseline is None:  # not enough history for this hour of the week yet
        return False, None
    z = baseline.z(value)
    if math.isinf(z):
        z = math.copysign(1e9, z)
    return c.compare.holds(z, threshold), round(z, 3)


def burn_alerts(c: SloBurn, threshold: float) -> tuple[BurnAlert, ...]:
    """The window pairs ``c`` checks: its own, or the workbook's paging pairs."""
    if c.long is None or c.short is None or c.compare is None:
        return PAGE_ALERTS
    rate = threshold if c.compare.value is None else c.compare.value
    return (BurnAlert(c.long, c.short, 0.0, "rule", rate=rate),)


def _slo_burn(c: Any, h: History, threshold: float, window: timedelta, now: datetime) -> Outcome:
    """Holds when some pair burns above its rate over both windows; the value is the
    long-window burn rate of the pair that holds (else of the first pair)."""
    if h.objective is None or h.slo is None:
        return False, None
    pairs = burn_alerts(c, threshold)
    found = h.slo.counts(h.service_id, {w for a in pairs for w in (a.long, a.short)}, now)
    if found is None:
        return False, None
    value = None
    for pair in pairs:
        rates = [burn_rate(found[w], h.objective) for w in (pair.long, pair.short)]
        if value is None and rates[0] is not None:
            value = round(rates[0], 3)
        limit = pair.threshold(h.objective)
        if all(r is not None and r > limit for r in rates):
            return True, round(rates[0] or 0.0, 3)
    return False, value


EVALUATORS: dict[type, Callable[[Any, History, float, timedelta, datetime], Outcome]] = {
    StatusCondition: _status,
    MetricCondition: _metric,
    AbsentCondition: _absent,
    ConsecutiveFailures: _consecutive,
    LogErrors: _log_errors,
    NewErrorPattern: _new_pattern,
    ErrorPatternRate: _pattern_rate,
    AnomalyCondition: _anomaly,
    SloBurn: _slo_burn,
}


def evaluate(
    condition: Condition, history: History, threshold: float, window: timedelta, now: datetime
) -> Outcome:
    return EVALUATORS[type(condition)](condition, history, threshold, window, now)
