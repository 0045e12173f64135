"""Services against the checker registry, and relations between services."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

import checkers
from server.config import Draft
from server.config.pydantic_errors import describe, translate_all
from server.config.source import Path
from server.core import redact
from server.core.thresholds import pair_problem


def check(draft: Draft) -> None:
    """Service types and checker blocks (for every service written), then relations."""
    parsed = dict(draft.items("services"))
    for path, raw in draft.raw_items("services"):
        settings = _service(draft, path, raw)
        service = parsed.get(path)
        if settings is not None and service is not None:
            _degraded_before_timeout(draft, path, service, settings)
    _relations(draft)


def _service(draft: Draft, path: Path, raw: dict[str, Any]) -> Any:
    """Check one service's type and block; its checker settings, or None if they failed."""
    kind = raw.get("type")
    if not isinstance(kind, str) or not kind:
        return  # the model reported it
    if kind not in checkers.SERVICE_TYPES:
        names = ", ".join(f"'{t}'" for t in checkers.SERVICE_TYPES[:-1])
        expected = f"{names} or '{checkers.SERVICE_TYPES[-1]}'"
        draft.report((*path, "type"), f"expected one of {expected}, got {describe(kind)}")
        return
    mismatched = [t for t in checkers.SERVICE_TYPES if t != kind and raw.get(t) is not None]
    for other in mismatched:
        draft.report(
            (*path, other),
            f'block "{other}" does not match type "{kind}"; '
            f'rename it to "{kind}" or change the type',
        )
    block = raw.get(kind)
    model = checkers.settings_model(kind)
    if mismatched or model is None or not isinstance(block, dict | None):
        return  # a block that is no mapping was reported by the model
    try:
        settings = model.model_validate(block or {})
    except ValidationError as exc:
        required = [n for n, f in model.model_fields.items() if f.is_required()]
        if block is None and required:
            draft.report(
                (*path, kind),
                f'block "{kind}" is required, with at least: ' + ", ".join(required),
            )
        else:
            draft.problems.extend(translate_all(exc, block, draft.source, model, (*path, kind)))
        return None
    draft.secrets |= redact.secrets_in(settings)
    return settings


def _degraded_before_timeout(draft: Draft, path: Path, service: Any, settings: Any) -> None:
    """``degraded_over_ms`` (http, tcp) at or past the service's ``timeout``: a response
    that slow has failed by then, so DEGRADED could never be seen."""
    degraded = getattr(settings, "degraded_over_ms", None)
    if degraded is None or not draft.parsed((*path, "timeout"), (*path, "interval")):
        return
    timeout_ms = service.timeout.total_seconds() * 1000
    problem = pair_problem(
        ("degraded_over_ms", degraded), ("the service's timeout in ms", timeout_ms), equal_ok=False
    )
    if problem:
        draft.report((*path, service.type, "degraded_over_ms"), problem)


def _relations(draft: Draft) -> None:
    known = {s.id for s in draft.services_written()}
    seen: set[str] = set()
    edges: dict[str, list[str]] = {}
    cycle_paths: dict[tuple[str, str], Path] = {}
    for path, relation in draft.items("relations"):
        for end in ("source", "target"):
            name = getattr(relation, end)
            if name not in known:
                draft.report((*path, end), f'unknown service "{name}"; define it under services')
        if relation.source == relation.target:
            draft.report((*path, "target"), "a service cannot relate to itself")
        if relation.relation_id in seen:
            draft.report(path, f'duplicate relation "{relation.relation_id}"')
        seen.add(relation.relation_id)
        if relation.type == "depends_on" and relation.source != relation.target:
            edges.setdefault(relation.source, []).append(relation.target)
            cycle_paths.setdefault((relation.source, relation.target), path)
    cycle = find_cycle(edges)
    if cycle:
        draft.report(cycle_paths[(cycle[-2], cycle[-1])], "depends_on cycle: " + " -> ".join(cycle))


def find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """One cycle in the graph as a closed walk ``[a, b, a]``, or ``[]``.

    Iterative depth-first search: a chain of thousands of depends_on relations
    must not hit Python's recursion limit.
    """
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in sorted(edges):
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, index = stack[-1]
            targets = edges.get(node, [])
            if index == len(targets):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, index + 1)
            nxt = targets[index]
            if state.get(nxt) == 1:
                path = [n for n, _ in stack]
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
    return []
