"""The status page's groups against the services."""

from __future__ import annotations

from server.config import Draft
from server.config.source import Path
from server.core import selectors


def check(draft: Draft) -> None:
    """Each group names at least one service and every selector picks one (an error);
    group names are unique. A selector that picks only disabled services is a warning:
    /status leaves disabled services out, yet disabling one for a while must not make
    the file invalid (:meth:`Draft.warn`)."""
    written: list[tuple[str, str]] = []
    disabled: list[tuple[str, str]] = []
    for _, raw in draft.raw_items("services"):  # a service with another problem counts too
        sid, stack = raw.get("id"), raw.get("stack", "default")
        if isinstance(sid, str):
            written.append((sid, stack if isinstance(stack, str) else "default"))
            if raw.get("enabled") is False:
                disabled.append(written[-1])
    enabled = [s for s in written if s not in disabled]
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
            where = (*path, "services", position)
            if not selectors.matches_any(selector, written):
                message = f'"{selector}" matches no service; use a service id, stack:<name> or glob'
                draft.report(where, message)
            elif not selectors.matches_any(selector, enabled):
                _only_disabled(draft, where, selector, group.name, disabled)


def _only_disabled(
    draft: Draft, where: Path, selector: str, group: str, disabled: list[tuple[str, str]]
) -> None:
    """Warn that ``selector`` picks only disabled services, naming them."""
    picked = [sid for sid, stack in disabled if selectors.matches(selector, sid, stack)]
    names = ", ".join(f'"{sid}"' for sid in picked[:3]) + (" ..." if len(picked) > 3 else "")
    what = (
        "is disabled (enabled: false)"
        if picked == [selector]
        else f"matches only disabled services ({names})"
    )
    draft.warn(
        where,
        f'"{selector}" {what}, so /status shows nothing for it in group "{group}"; enable '
        "the service or take it out of the group",
    )
