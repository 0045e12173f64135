"""The per-address budget of Temporal visibility calls (``temporal.max_visibility_rps``).

Temporal's frontend limits the "visibility" APIs of each namespace to
``frontend.namespaceRPS.visibility`` calls per second per frontend instance
(default 10). That bucket holds CountWorkflowExecutions, ListWorkflowExecutions,
ListSchedules and DescribeTaskQueue (temporalio/temporal,
``service/frontend/configs/quotas.go``, ``VisibilityAPIToPriority``), and the Web
UI, the CLI and the applications' own list calls draw from it too. A monitor
that spends it all makes the operator's UI fail with ResourceExhausted, so every
visibility call our checks make first takes a token from its address's budget.

The budget is a token bucket kept as GCRA (one "theoretical arrival time" per
address): ``rate`` calls per second, bursts of up to one second's worth. A call
that would have to wait past its check's deadline does not wait: it raises
:class:`BudgetExhausted` at once, and the check says so (UNKNOWN) instead of
timing out silently. This module imports no temporalio: the daemon configures
it whether or not a Temporal check exists.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

DEFAULT_MAX_VISIBILITY_RPS = 5.0  # half of Temporal's default 10/s: leave the UI its share

_rate = DEFAULT_MAX_VISIBILITY_RPS
_budgets: dict[str, Budget] = {}
_lock = threading.Lock()


class BudgetExhausted(Exception):
    """A visibility call would wait past its check's deadline; ``wait`` in seconds."""

    def __init__(self, address: str, rate: float, wait: float) -> None:
        self.address, self.rate, self.wait = address, rate, wait
        super().__init__(
            f"visibility budget of {rate:g} calls/s for {address} used up by other checks: "
            f"the next call could go in {wait:.1f} s, after this check's deadline "
            "(raise temporal.max_visibility_rps, and the server's "
            "frontend.namespaceRPS.visibility with it, or check less often)"
        )


class Budget:
    """One address's bucket; ``clock`` is monotonic seconds (the deadline's time base)."""

    def __init__(
        self,
        address: str,
        rate: Callable[[], float] = lambda: _rate,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.rate = rate
        self.clock = clock
        self._tat = -math.inf  # when the bucket is next empty ("theoretical arrival time")
        self._lock = threading.Lock()
        self.granted = 0
        self.refused = 0

    def reserve(self, deadline: float) -> float:
        """Seconds to wait before the call may go; the token is taken now.

        Raises :class:`BudgetExhausted` (taking nothing) when the wait would end
        after ``deadline`` (on ``clock``'s scale).
        """
        with self._lock:
            rate = self.rate()
            now = self.clock()
            spacing = 1.0 / rate
            burst = max(1.0, math.floor(rate))
            tat = max(self._tat, now)
            wait = max(0.0, tat - (burst - 1) * spacing - now)
            if now + wait > deadline:
                self.refused += 1
                raise BudgetExhausted(self.address, rate, wait)
            self._tat = tat + spacing
            self.granted += 1
            return wait

    async def acquire(self, deadline: float) -> None:
        """Wait for this call's turn (on the running loop), or raise :class:`BudgetExhausted`."""
        wait = self.reserve(deadline)
        if wait > 0:
            await asyncio.sleep(wait)


def configure(max_visibility_rps: float) -> None:
    """Set every address's rate (config load and reload); takes effect on the next call."""
    global _rate  # noqa: PLW0603 - one process-wide setting, from the config file
    if not max_visibility_rps > 0:
        raise ValueError("max_visibility_rps must be above 0")
    _rate = float(max_visibility_rps)


def rate() -> float:
    """The configured calls per second per address."""
    return _rate


def budget(address: str) -> Budget:
    """The process-wide budget of one Temporal address (``host:port``)."""
    with _lock:
        found = _budgets.get(address)
        if found is None:
            found = _budgets[address] = Budget(address)
        return found
