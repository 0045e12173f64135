"""Failed sign-ins, counted per client address and per user name over a sliding window.

No library fits: Flask-Limiter and ``limits`` read ``time.time()`` in their own
storage and run a timer thread, while every time-dependent part of Lightbulb takes
an injected clock so tests move time instead of sleeping.

Policy (:data:`WINDOW`, :data:`PER_ADDRESS`, :data:`PER_USER`): after 5 failed
sign-ins from one address, or 10 for one user name from anywhere, within 15
minutes, further attempts are refused with 429 (even with the right password)
until the oldest failure leaves the window. A successful sign-in clears the
address's and the user's failures. Memory is bounded: at most :data:`MAX_KEYS`
keys are remembered, the least recently failed dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from server.core.clock import Clock

WINDOW = 15 * 60.0  # seconds
PER_ADDRESS = 5
PER_USER = 10
MAX_KEYS = 10_000


class LoginLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str, user: str) -> int:
        """Seconds until ``address`` may try signing in as ``user`` again; 0 if it may now."""
        now = self._clock.monotonic()
        with self._lock:
            waits = [
                self._wait(f"addr:{address}", PER_ADDRESS, now),
                self._wait(f"user:{user}", PER_USER, now),
            ]
        return max(waits)

    def failed(self, address: str, user: str) -> None:
        now = self._clock.monotonic()
        with self._lock:
            for key in (f"addr:{address}", f"user:{user}"):
                times = self._failures.pop(key, None) or deque()
                times.append(now)
                self._failures[key] = times  # most recent last
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, address: str, user: str) -> None:
        with self._lock:
            self._failures.pop(f"addr:{address}", None)
            self._failures.pop(f"user:{user}", None)

    def _wait(self, key: str, limit: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - WINDOW:
            times.popleft()
        if len(times) < limit:
            return 0
        return max(1, int(times[-limit] + WINDOW - now + 0.999))
