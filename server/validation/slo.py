"""SLO objectives and ``slo_burn`` rules against the services and the history kept.

Reads the conditions :mod:`server.validation.alerting` parsed (:class:`ParsedRule`):
a condition is parsed in one place, so no check here words it differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from server.alerting.conditions import MIN_BURN_WINDOW, SloBurn, burn_rate_problem
from server.analytics.slo import PAGE_ALERTS
from server.config import Draft
from server.config.models import SloConfig
from server.config.source import Path
from server.config.types import format_duration
from server.core import selectors
from server.core.units import DurationRange, parse_duration
from server.validation.alerting import ParsedRule

# the shortest objective a config may set (SloConfig.window's range)
MIN_SLO_WINDOW = parse_duration(
    next(m.low for m in SloConfig.model_fields["window"].metadata if isinstance(m, DurationRange))
)


def check(draft: Draft, rules: list[ParsedRule]) -> None:
    """No SLO window reaches the edge of ``clickhouse.retention_days`` of history
    (:func:`slo_window_limit`); an ``slo_burn`` rule selects only services with an
    ``slo``, with windows that fit them and the history. Every "at most"/"at least" a
    report suggests is itself accepted; when none is, it says what else must change."""
    burns = [r for r in rules if isinstance(r.condition, SloBurn)]
    _objectives(draft, burns)
    _burn_windows(draft, burns)
    days = draft.config.clickhouse.retention_days
    limit = slo_window_limit(days)
    for path, service in draft.items("services"):
        where = (*path, "slo", "window")
        if (
            service.slo is None
            or service.slo.window <= limit
            or not draft.parsed(where, ("clickhouse", "retention_days"))
        ):
            continue
        keep = _days_needed(service.slo.window)
        if limit >= MIN_SLO_WINDOW:
            fix = f"shorten it to {format_duration(limit)} at most or keep {keep} days"
        else:  # one day kept holds no whole window: only more days help
            fix = (
                f"no window fits in {days} day kept; set clickhouse.retention_days to at "
                f"least {keep}"
            )
        draft.report(
            where,
            f"{draft.as_written(where, service.slo.window)} reaches the edge of the history "
            f"kept (clickhouse.retention_days: {days}; the day a window starts in is dropped "
            f"whole at midnight, so a window needs one day less than is kept): {fix}",
        )


def slo_window_limit(retention_days: int) -> timedelta:
    """The longest SLO window ``retention_days`` of history can count in full.

    Summaries are dropped a UTC day (``service_status_daily``) or hour at a time, at
    the first midnight past ``retention_days``; a window starts partway through a day,
    so that day's row must still be kept: one day less than retention.
    """
    return timedelta(days=retention_days - 1)


def _days_needed(window: timedelta) -> int:
    """The ``retention_days`` a window of ``window`` needs (:func:`slo_window_limit`)."""
    return -(-window // timedelta(days=1)) + 1


def _objectives(draft: Draft, burns: list[ParsedRule]) -> None:
    """An ``slo_burn`` rule needs an objective on each service it selects.

    Judged on the services as written: a service whose ``slo`` is refused (``target:
    100``) has one, reported at its own key, not missing a second time here."""
    without = [(s.id, s.stack) for s in draft.services_written() if not s.slo]
    for burn in burns:
        selector = burn.raw.get("service")
        if not isinstance(selector, str):
            continue  # the model reported it
        missing = [sid for sid, stack in without if selectors.matches(selector, sid, stack)]
        if missing:
            names = ", ".join(f'"{sid}"' for sid in missing[:3]) + (
                " ..." if len(missing) > 3 else ""
            )
            draft.report(
                (*burn.path, "condition"),
                "slo_burn needs an objective on every service the rule selects, and it "
                f"selects services without slo: {names}; add slo: {{target: 99.9, window: 30d}} "
                "to each, or narrow the rule's service",
            )


@dataclass(frozen=True)
class _Windows:
    """An ``slo_burn`` rule's widest pair, and how a report names them (as written)."""

    long: timedelta
    short: timedelta
    rule: str  # the condition as written, or what the bare form stands for
    long_text: str
    short_text: str
    rate: str  # for examples: the rule's rate, or 14.4
    derived: bool = False  # the short window is 1/12 of the long: shortening one does both

    @classmethod
    def of(cls, condition: SloBurn, text: str, threshold: float) -> _Windows:
        rate = _rate_text(condition, threshold)
        if condition.long is None or condition.short is None:
            long = max(a.long for a in PAGE_ALERTS)
            short = min(a.short for a in PAGE_ALERTS)
            bare = "slo_burn (the workbook's pairs: 1h 5m and 6h 30m)"
            return cls(long, short, bare, format_duration(long), format_duration(short), rate)
        long_text = condition.written[0]
        short_text = (
            condition.written[1]
            if len(condition.written) > 1
            else f"{format_duration(condition.short)} (1/12 of {long_text})"
        )
        derived = len(condition.written) == 1
        return cls(condition.long, condition.short, text, long_text, short_text, rate, derived)


def _burn_windows(draft: Draft, burns: list[ParsedRule]) -> None:
    """An ``slo_burn`` rule's windows fit its services and the history; its rate is above 0.

    A long window past an objective's window measures something the objective does
    not promise (and scales the rate below 1); past the history kept it counts less
    than it says; a short window under a service's interval holds no check half the
    time. A bare ``slo_burn`` is the workbook's pairs (1 h and 5 min, 6 h and 30 min).
    Windows are quoted as written (``360m``); an example pair is offered only when one
    fits the objective, the history and the interval together.
    """
    services = [(path, s) for path, s in draft.items("services") if s.slo is not None]
    for burn in burns:
        rule, condition, path = burn.rule, burn.condition, burn.path
        if rule is None or not isinstance(condition, SloBurn):
            continue
        compare = condition.compare
        by_threshold = compare is not None and compare.value is None
        if by_threshold and rule.threshold <= 0 and draft.parsed((*path, "threshold")):
            draft.report((*path, "threshold"), burn_rate_problem(rule.threshold))
        if compare is not None and compare.value is not None and compare.value <= 0:
            draft.report((*path, "condition"), burn_rate_problem(compare.value))
        windows = _Windows.of(condition, rule.condition, rule.threshold)
        _past_history(draft, (*path, "condition"), windows)
        for spath, service in services:
            if selectors.matches(rule.service, service.id, service.stack):
                _against_service(draft, (*path, "condition"), windows, spath, service)


def _past_history(draft: Draft, where: Path, w: _Windows) -> None:
    """The long window within the history kept; else the shorter pair, or the days, to use."""
    days = draft.config.clickhouse.retention_days
    limit = slo_window_limit(days)
    if w.long <= limit or not draft.parsed(("clickhouse", "retention_days")):
        return
    keep = f"keep {_days_needed(w.long)} days"
    if limit > w.short or (w.derived and limit / 12 >= MIN_BURN_WINDOW):
        fix = f"use a long window of {format_duration(limit)} at most or {keep}"
    elif limit > MIN_BURN_WINDOW:
        fix = (
            f"{keep}, or shorten both windows (the long one to {format_duration(limit)} "
            "at most, the short one below it)"
        )
    else:
        fix = (
            f"no pair of windows fits in {days} day kept; set clickhouse.retention_days "
            f"to at least {_days_needed(w.long)}"
        )
    draft.report(
        where,
        f"{w.rule}: the long window ({w.long_text}) reaches past the history kept "
        f"(clickhouse.retention_days: {days}); {fix}",
    )


def _against_service(draft: Draft, where: Path, w: _Windows, spath: Path, service: Any) -> None:
    """The long window within the service's objective, the short one at least its interval;
    an example pair that satisfies both (and the history), or what else must change."""
    window = service.slo.window
    window_text = draft.as_written((*spath, "slo", "window"), window)
    limit = slo_window_limit(draft.config.clickhouse.retention_days)
    cap = min(window, limit) if limit > timedelta(0) else window
    cap_text = window_text if cap == window else format_duration(cap)
    interval_text = draft.as_written((*spath, "interval"), service.interval)
    floor = max(service.interval, MIN_BURN_WINDOW)
    floor_text = interval_text if floor == service.interval else format_duration(floor)
    if w.long > window and draft.parsed((*spath, "slo", "window")):
        example = _pair((cap, cap_text), max(cap / 12, floor), "1")
        fix = (
            f", e.g. {example} (the whole budget spent at this pace over the objective's window)"
            if example
            else ", and check more often"
        )
        draft.report(
            where,
            f"{w.rule}: the long window ({w.long_text}) is longer than the objective of "
            f'"{service.id}" ({window_text}): its burn rate would measure a period the '
            f"objective does not cover; use a long window of {cap_text} at most{fix}",
        )
    if w.short < service.interval and draft.parsed((*spath, "interval")):
        if floor < min(w.long, cap):
            pick = (w.long, w.long_text) if w.long <= cap else (cap, cap_text)
        else:
            pick = (cap, cap_text) if floor * 12 >= cap else (floor * 12, "")
        example = _pair(pick, floor, w.rate)
        fix = (
            f"use a short window of at least {floor_text}, e.g. {example}, or check more often"
            if example
            else "check more often: no short window of at least the interval fits under a "
            f"long window of {cap_text} at most"
        )
        draft.report(
            where,
            f"{w.rule}: the short window ({w.short_text}) is shorter than the interval of "
            f'"{service.id}" ({interval_text}), so it often holds no check; {fix}',
        )


def _rate_text(condition: SloBurn, threshold: float) -> str:
    """The rule's burn rate as a report's example writes it (14.4 for the bare form)."""
    if condition.compare is None:
        return "14.4"
    value = threshold if condition.compare.value is None else condition.compare.value
    return f"{value:g}" if value > 0 else "14.4"


def _pair(long: tuple[timedelta, str], short: timedelta, rate: str) -> str:
    """``slo_burn LONG SHORT > RATE`` when that pair parses (short under long), else "".

    ``long`` is the window and its text as written ("" to format it)."""
    if short >= long[0] or short < MIN_BURN_WINDOW:
        return ""
    text = long[1] or format_duration(long[0])
    return f"slo_burn {text} {format_duration(short)} > {rate}"
