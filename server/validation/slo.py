"""SLO objectives and ``slo_burn`` rules against the services and the history kept.

Reads the conditions :mod:`server.validation.alerting` parsed (:class:`ParsedRule`):
a condition is parsed in one place, so no check here words it differently.
"""

from __future__ import annotations

from datetime import timedelta

from server.alerting.conditions import SloBurn, burn_rate_problem
from server.analytics.slo import PAGE_ALERTS
from server.config import Draft
from server.config.types import format_duration
from server.core import selectors
from server.validation.alerting import ParsedRule


def check(draft: Draft, rules: list[ParsedRule]) -> None:
    """No SLO window reaches the edge of ``clickhouse.retention_days`` of history
    (:func:`slo_window_limit`); an ``slo_burn`` rule selects only services with an
    ``slo``, with windows that fit them and the history."""
    burns = [r for r in rules if isinstance(r.condition, SloBurn)]
    _objectives(draft, burns)
    _burn_windows(draft, burns)
    days = draft.config.clickhouse.retention_days
    for path, service in draft.items("services"):
        where = (*path, "slo", "window")
        if (
            service.slo is not None
            and service.slo.window > slo_window_limit(days)
            and draft.parsed(where, ("clickhouse", "retention_days"))
        ):
            draft.report(
                where,
                f"{format_duration(service.slo.window)} reaches the edge of the history kept "
                f"(clickhouse.retention_days: {days}; the day a window starts in is dropped "
                "whole at midnight, so a window needs one day less than is kept): shorten it "
                f"to {format_duration(slo_window_limit(days))} at most or keep "
                f"{_days_needed(service.slo.window)} days",
            )


def slo_window_limit(retention_days: int) -> timedelta:
    """The longest SLO window ``retention_days`` of history can count in full.

    Summaries are dropped a UTC day (``service_status_daily``) or hour at a time, at
    the first midnight past ``retention_days``; a window starts partway through a day,
    so that day's row must still be kept: one day less than retention.
    """
    return timedelta(days=retention_days - 1)


def _days_needed(window: timedelta) -> int:
    return -(-window // timedelta(days=1)) + 1


def _objectives(draft: Draft, burns: list[ParsedRule]) -> None:
    """An ``slo_burn`` rule needs an objective on each service it selects.

    Judged on the services as written: a service whose ``slo`` is refused (``target:
    100``) has one, reported at its own key, not missing a second time here."""
    without: list[tuple[str, str]] = []
    for _, raw in draft.raw_items("services"):
        sid, stack = raw.get("id"), raw.get("stack", "default")
        if isinstance(sid, str) and raw.get("slo") is None:
            without.append((sid, stack if isinstance(stack, str) else "default"))
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


def _burn_windows(draft: Draft, burns: list[ParsedRule]) -> None:
    """An ``slo_burn`` rule's windows fit its services and the history; its rate is above 0.

    A long window past an objective's window measures something the objective does
    not promise (and scales the rate below 1); past the history kept it counts less
    than it says; a short window under a service's interval holds no check half the
    time. A bare ``slo_burn`` is the workbook's pairs (1 h and 5 min, 6 h and 30 min).
    """
    days = draft.config.clickhouse.retention_days
    limit = slo_window_limit(days)
    services = [(path, s) for path, s in draft.items("services") if s.slo is not None]
    for burn in burns:
        rule, condition, path = burn.rule, burn.condition, burn.path
        if rule is None or not isinstance(condition, SloBurn):
            continue
        where = (*path, "condition")
        if condition.long is None or condition.short is None:
            pairs = [(a.long, a.short) for a in PAGE_ALERTS]
            written = "slo_burn (the workbook's pairs: 1h 5m and 6h 30m)"
        else:
            pairs = [(condition.long, condition.short)]
            written = rule.condition
        long = max(p[0] for p in pairs)
        short = min(p[1] for p in pairs)
        compare = condition.compare
        by_threshold = compare is not None and compare.value is None
        if by_threshold and rule.threshold <= 0 and draft.parsed((*path, "threshold")):
            draft.report((*path, "threshold"), burn_rate_problem(rule.threshold))
        if long > limit and draft.parsed(("clickhouse", "retention_days")):
            draft.report(
                where,
                f"{written}: the long window ({format_duration(long)}) reaches past the "
                f"history kept (clickhouse.retention_days: {days}); use a window of "
                f"{format_duration(limit)} at most or keep more days",
            )
        for spath, service in services:
            if not selectors.matches(rule.service, service.id, service.stack):
                continue
            assert service.slo is not None
            if long > service.slo.window and draft.parsed((*spath, "slo", "window")):
                draft.report(
                    where,
                    f"{written}: the long window ({format_duration(long)}) is longer than "
                    f'the objective of "{service.id}" ({format_duration(service.slo.window)}): '
                    "its burn rate would measure a period the objective does not cover; use "
                    f"a long window of {format_duration(service.slo.window)} at most, e.g. "
                    f"slo_burn {format_duration(service.slo.window)} "
                    f"{format_duration(service.slo.window / 12)} > 1 (the whole budget "
                    "spent at this pace over the objective's window)",
                )
            if short < service.interval and draft.parsed((*spath, "interval")):
                draft.report(
                    where,
                    f"{written}: the short window ({format_duration(short)}) is shorter than "
                    f'the interval of "{service.id}" ({format_duration(service.interval)}), '
                    "so it often holds no check; use a short window of at least the interval "
                    "or check more often",
                )
