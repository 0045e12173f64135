"""Stage "send with retry": when to try a notice again, and when to stop.

Transient failures are retried with exponential backoff and full jitter
(AWS Architecture Blog, "Exponential Backoff and Jitter": a delay drawn
uniformly from ``[0, min(max_backoff, backoff * 2^(n-1))]``) until the notice's
deadline, ``alerting.delivery_deadline`` after it was queued; a receiver's
``Retry-After`` is a floor on the delay. Permanent failures stop at once.
``alerting.retries``, when set, also caps the number of retries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.core.backoff import ceiling
from server.notify.base import ChannelError


@dataclass(frozen=True)
class RetryPolicy:
    backoff: float = 1.0  # seconds: the first delay's ceiling
    max_backoff: float = 300.0  # seconds: no delay's ceiling grows beyond this
    deadline: float = 3600.0  # seconds after a notice was queued: give up then
    retries: int | None = None  # optional cap on retries (None: the deadline alone)

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        jittered = rng.uniform(0, ceiling(self.backoff, self.max_backoff, attempt))
        return max(jittered, retry_after) if retry_after is not None else jittered

    def deadline_for(self, queued: datetime) -> datetime:
        return queued + timedelta(seconds=self.deadline)

    def next_try(
        self,
        error: ChannelError,
        attempts: int,
        now: datetime,
        deadline: datetime,
        rng: random.Random,
    ) -> float | None:
        """Seconds until the next attempt, or None to give up.

        The last attempt is made at the deadline itself rather than skipped when
        a drawn delay would overshoot it.
        """
        if error.permanent or now >= deadline:
            return None
        if self.retries is not None and attempts > self.retries:
            return None
        left = (deadline - now).total_seconds()
        return min(self.delay(attempts, rng, error.retry_after), left)
