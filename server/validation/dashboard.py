"""The status page's groups against the services."""

from __future__ import annotations

from server.config import Draft
from server.config.source import Path
from server.core import selectors


def check(draft: Draft) -> None:
    """Each group names at least one service and every selector picks one (an error);
    group names are unique. A selector that picks only disabled services is a warning:
    /status leaves disabled services out, yet disabling one for a while must not make
    the file invalid (:meth:`Draft.warn`).

    Groups are read as written, each on its own: one group's bad name or selector list
    (which fails the whole status_page section) never hides another group's problems.
    """
    services = draft.services_written()
    written = [(s.id, s.stack) for s in services]
    enabled = [(s.id, s.stack) for s in services if s.enabled]
    disabled = [(s.id, s.stack) for s in services if not s.enabled]
    reported = {p.path for p in draft.problems}
    names: set[str] = set()
    groups = draft.value_at(("status_page", "groups"))
    for index, group in enumerate(groups if isinstance(groups, list) else []):
        path: Path = ("status_page", "groups", index)
        if not isinstance(group, dict):
            continue  # "expected a mapping": reported by the model
        name = group.get("name")
        if isinstance(name, str):
            if not name.strip() or name in names:
                message = f"expected a unique, non-empty group name, got {name!r}"
                draft.report((*path, "name"), message)
            names.add(name)
        chosen = group.get("services", [])
        if not isinstance(chosen, list) or (*path, "services") in reported:
            continue  # "expected a list": reported by the model
        if not chosen:
            draft.report((*path, "services"), "list at least one service id, stack:<name> or glob")
        shown = name if isinstance(name, str) else f"#{index + 1}"
        for position, selector in enumerate(chosen):
            where = (*path, "services", position)
            if not isinstance(selector, str) or where in reported:
                continue
            if not selectors.matches_any(selector, written):
                message = f'"{selector}" matches no service; use a service id, stack:<name> or glob'
                draft.report(where, message)
            elif not selectors.matches_any(selector, enabled):
                _only_disabled(draft, where, selector, shown, disabled)


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
