"""Memoize a function of the live configuration: one value, for the last one given.

One configuration is live at a time (a reload replaces it), and what is derived from
it alone (which services a rule selects, which rules are SLO burns) need not be
worked out per request. The value is kept for the last argument given, compared by
identity (configurations are not hashable), so a reload's new configuration is
worked out once and the old one is let go.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def per_last(fn: Callable[[Any], T]) -> Callable[[Any], T]:
    """``fn(obj)``, worked out once while ``obj`` (by identity) is the last one given.

    Thread-safe in effect: the held pair is replaced whole, and two threads that miss
    at once both work it out and keep either (``fn`` must be a pure function of
    ``obj``, which must not change)."""
    held: tuple[Any, T] | None = None

    @functools.wraps(fn)
    def wrapper(obj: Any) -> T:
        nonlocal held
        pair = held
        if pair is not None and pair[0] is obj:
            return pair[1]
        value = fn(obj)
        held = (obj, value)
        return value

    return wrapper
