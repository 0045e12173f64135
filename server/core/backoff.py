"""Exponential backoff ceilings, one rule for every retry loop (notices, the report).

``ceiling(first, longest, n)`` is ``min(longest, first * 2^(n-1))`` for the
``n``-th failure (1-based), the doubling of "Exponential Backoff and Jitter"
(AWS Architecture Blog). The exponent is clamped to ``[0, MAX_DOUBLINGS]`` so a
huge failure count (a receiver down for weeks, a count restored from storage)
can neither overflow a float nor raise ``OverflowError``, and ``longest`` below
``first`` (refused at config load, but not here) still yields ``longest``.
"""

from __future__ import annotations

import math

MAX_DOUBLINGS = 60  # 2^60 times any first delay of at least 10 ms exceeds any longest


def ceiling(first: float, longest: float, failures: int) -> float:
    """Seconds: the longest delay to draw after failure number ``failures`` (1-based).

    Never negative, never above ``longest``, finite for every int ``failures``.
    """
    doublings = min(max(failures - 1, 0), MAX_DOUBLINGS)
    value = min(longest, first * math.ldexp(1.0, doublings))
    return max(value, 0.0)
