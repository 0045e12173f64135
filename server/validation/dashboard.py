"""The status page's groups against the services, and SLO windows against the history kept."""

from __future__ import annotations

from datetime import timedelta

from server.config import Draft
from server.config.types import format_duration
from server.core import selectors


def check(draft: Draft) -> None:
    """Each group names at least one service and every selector picks one; group names are
    unique; no SLO window reaches the edge of ``clickhouse.retention_days`` of history
    (:func:`slo_window_limit`); an ``slo_burn`` rule selects only services with an
    ``slo``, with windows that fit them."""
    _slo_rules(draft)
    written: list[tuple[str, str]] = []
    for _, raw in draft.raw_items("services"):  # a service with another problem counts too
        sid, stack = raw.get("id"), raw.get("stack", "default")
        if isinstance(sid, str):
            written.append((sid, stack if isinstance(stack, str) else "default"))
    names: set[str] = set()
    for index, group in enumerate(draft.config.status_page.groups):
        path: tuple[str | int, ...] = ("status_page", "groups", index)
        if not group.name.strip() or group.name in names:
            draft.report(
                (*path, "name"), f"expected a unique, non-empty group name, got {group.name!r}"
            )
        names.add(group.name)
        if not group.services:
            draft.report((*path, "services"), "list at least one service id, stack:<name> or glob")
        for position, selector in enumerate(group.services):
            if not selectors.matches_any(selector, written):
                message = f'"{selector}" matches no service; use a service id, stack:<name> or glob'
                draft.report((*path, "services", position), message)
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


def _slo_rules(draft: Draft) -> None:
    """An ``slo_burn`` rule needs an objective on each service it selects."""
    without = [(s.id, s.stack) for s in draft.config.services if s.slo is None]
    for path, raw in draft.raw_items("alert_rules"):
        text, selector = raw.get("condition"), raw.get("service")
        if not isinstance(text, str) or not isinstance(selector, str):
            continue  # the model reported it
        if [t.lower() for t in text.split()[:1]] != ["slo_burn"]:
            continue
        missing = [sid for sid, stack in without if selectors.matches(selector, sid, stack)]
        if missing:
            names = ", ".join(f'"{sid}"' for sid in missing[:3]) + (
                " ..." if len(missing) > 3 else ""
            )
            draft.report(
                (*path, "condition"),
                "slo_burn needs an objective on every service the rule selects, and it "
                f"selects services without slo: {names}; add slo: {{target: 99.9, window: 30d}} "
                "to each, or narrow the rule's service",
            )
