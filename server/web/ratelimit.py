"""Failed sign-ins, counted per client address and per user name over a sliding window.

Every way of proving who one is counts: the ``/login`` form, HTTP Basic
credentials and bearer tokens sent with any request (:func:`server.web.auth.principal`);
otherwise the API would be a way around the sign-in limit. A bearer token names no
user, so its failures count for the address only.

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

    def retry_after(self, address: str, user: str | None) -> int:
        """Seconds until ``address`` may try signing in as ``user`` again; 0 if it may now.

        ``user`` None (a bearer token): the address's limit only.
        """
        now = self._clock.monotonic()
        with self._lock:
            waits = [self._wait(key, limit, now) for key, limit in self._keys(address, user)]
        return max(waits)

    def failed(self, address: str, user: str | None) -> None:
        now = self._clock.monotonic()
        with self._lock:
            for key, _limit in self._keys(address, user):
                times = self._failures.pop(key, None) or deque()
                times.append(now)
                self._failures[key] = times  # most recent last
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, address: str, user: str | None) -> None:
        with self._lock:
            for key, _limit in self._keys(address, user):
                self._failures.pop(key, None)

    @staticmethod
    def _keys(address: str, user: str | None) -> list[tuple[str, int]]:
        keys = [(f"addr:{address}", PER_ADDRESS)]
        if user is not None:
            keys.append((f"user:{user}", PER_USER))
        return keys

    def _wait(self, key: str, limit: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - WINDOW:
            times.popleft()
        if len(times) < limit:
            return 0
        return max(1, int(times[-limit] + WINDOW - now + 0.999))
