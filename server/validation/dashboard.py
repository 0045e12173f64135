"""The status page's groups against the services."""

from __future__ import annotations

from server.config import Draft
from server.core import selectors


def check(draft: Draft) -> None:
    """Each group names at least one service and every selector picks one; group names are
    unique."""
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
