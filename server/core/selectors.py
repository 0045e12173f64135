"""Service selectors: how rules and silences name the services they apply to.

A selector is one of:

- a service id: ``payments-api``;
- ``stack:<name>``: every service of that stack;
- a glob (``fnmatch``, case-sensitive): ``api-*``, ``db-?``, ``web-[12]``.

The empty selector matches every service (silences that name only a rule).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

STACK_PREFIX = "stack:"
_GLOB_CHARS = "*?["


def is_exact(selector: str) -> bool:
    """True when ``selector`` names exactly one service id (no stack, no glob)."""
    return bool(selector) and not selector.startswith(STACK_PREFIX) and not is_glob(selector)


def is_glob(selector: str) -> bool:
    """True when ``selector`` contains glob characters."""
    return any(ch in selector for ch in _GLOB_CHARS)


def matches(selector: str, service_id: str, stack: str) -> bool:
    """Does ``selector`` pick the service ``service_id`` of stack ``stack``?"""
    if not selector:
        return True
    if selector.startswith(STACK_PREFIX):
        return selector[len(STACK_PREFIX) :] == stack
    return fnmatch.fnmatchcase(service_id, selector)


def matches_any(selector: str, services: Iterable[tuple[str, str]]) -> bool:
    """Does ``selector`` pick at least one of ``services`` (pairs of id and stack)?"""
    return any(matches(selector, sid, stack) for sid, stack in services)
