"""The status page's groups against the services, and SLO windows against the history kept."""

from __future__ import annotations

from datetime import timedelta

from server.config import Draft
from server.config.types import format_duration
from server.core import selectors


def check(draft: Draft) -> None:
    """Each group names at least one service and every selector picks one; group names are
    unique; no SLO window is longer than ``clickhouse.retention_days`` of history."""
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
        if service.slo is not None and service.slo.window > timedelta(days=days):
            draft.report(
                (*path, "slo", "window"),
                f"{format_duration(service.slo.window)} is longer than the history kept "
                f"(clickhouse.retention_days: {days}); shorten the window or keep more days",
            )
