"""Service selectors: how rules and silences name the services they apply to.

A selector is one of:

- a service id: ``payments-api``;
- ``stack:<name>``: every service of that stack;
- a glob (``fnmatch``, case-sensitive): ``api-*``, ``db-?``, ``web-[12]``.

The empty selector matches every service (silences that name only a rule).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

STACK_PREFIX = "stack:"
_GLOB_CHARS = "*?["
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# what an id (service or rule: lowercase letters, digits, _ . -) or a glob over ids holds
_ID_OR_GLOB = re.compile(r"[a-z0-9_.*?\[\]!-]+")
_CLASS = re.compile(r"\[!?[^\[\]]+\]")  # a closed [...] (or [!...]) set


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


def problem(selector: str, stacks: bool = True) -> str | None:
    """Why ``selector`` could never match (worded as the fix), or None if it may.

    ``stacks``: whether ``stack:<name>`` is allowed (service selectors; a rule is
    named by id or glob only). A control character, a character no id holds, or an
    unclosed ``[`` (which fnmatch would take literally) can match nothing.
    """
    expected = (
        'an id, "stack:<name>" or a glob like "api-*"'
        if stacks
        else ('an id or a glob like "disk-*"')
    )
    if _CONTROL.search(selector):
        return f"expected {expected}, without control characters"
    if stacks and selector.startswith(STACK_PREFIX):
        return None if selector[len(STACK_PREFIX) :].strip() else 'expected a name after "stack:"'
    if not _ID_OR_GLOB.fullmatch(selector):
        return f"expected {expected} of lowercase letters, digits, _ . - and * ? [ ]"
    if "[" in _CLASS.sub("", selector) or "]" in _CLASS.sub("", selector):
        return f'expected {expected} with each "[" closed by "]"'
    return None
