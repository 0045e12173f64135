"""What the rules of one service look back on: recent statuses, metrics, error logs.

Kept in memory and bounded: statuses to the flapping window, metric samples and
error times to the longest window a rule asks for. After a restart the status
window is seeded from ``service_status``, so ``consecutive_failures`` and
flapping carry on; metric and log windows refill from new results.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from checkers.base import CheckResult, Status
from server.core.levels import ERROR_LEVELS
from server.logs.patterns import pattern_of


def percent_state_change(statuses: list[Status]) -> float:
    """Nagios' flap detection: weighted share of changes, recent ones weigh more.

    Weights rise linearly from 0.8 (oldest change) to 1.2 (newest) over the
    window, so a service that has just settled drops below the low threshold
    sooner than one that has just started flapping.
    """
    n = len(statuses)
    if n < 2:
        return 0.0
    total, weight_sum = 0.0, 0.0
    for i in range(1, n):
        weight = 0.8 + 0.4 * (i - 1) / max(n - 2, 1)
        weight_sum += weight
        if statuses[i] != statuses[i - 1]:
            total += weight
    return total / weight_sum


@dataclass
class History:
    interval: float
    flap_window: int
    statuses: deque[Status] = field(default_factory=deque)
    consecutive_failures: int = 0
    metrics: dict[str, deque[tuple[datetime, float]]] = field(default_factory=dict)
    errors: deque[tuple[datetime, int]] = field(default_factory=deque)
    patterns: deque[tuple[datetime, int]] = field(default_factory=deque)  # (time, fingerprint)
    texts: dict[int, str] = field(default_factory=dict)  # fingerprint -> pattern, in window
    last_seen: datetime | None = None
    first_result: datetime | None = None  # first result this process saw
    last_result: CheckResult | None = None
    flapping: bool = False
    flap_share: float = 0.0
    # the window flapping was declared under, while a raised window is not yet full
    # (resize): settling is judged over that many of the newest checks meanwhile
    settle_window: int | None = None
    # fingerprint -> first time the fleet saw it; one dict shared by all histories
    book: dict[int, datetime] = field(default_factory=dict)
    service_id: str = ""
    baselines: Any = None  # server.analytics.baselines.Baselines, shared
    slo: Any = None  # server.analytics.burn.BurnCounts, shared: slo_burn's checks per window
    objective: Any = None  # server.analytics.slo.Objective of the service, if it has one

    def __post_init__(self) -> None:
        self.resize(self.flap_window)

    @property
    def flap_span(self) -> float:
        """Seconds of checks flapping is judged over: the last ``flap_window`` at the
        service's ``interval`` (also :func:`server.alerting.catalog.flap_spans`)."""
        return self.interval * self.flap_window

    def resize(self, window: int) -> None:
        """Judge flapping over the last ``window`` checks from now on, from the checks
        kept (the newest of them): a service flapping stays flapping until it settles
        under the new window, so its recorded period ends with a ``flapping_end``. Raised
        while flapping, it settles over the old window's count of newest checks until the
        new window fills (:meth:`update_flapping`)."""
        if self.flapping and window > self.flap_window:
            self.settle_window = min(self.settle_window or self.flap_window, self.flap_window)
        self.flap_window = window
        self.statuses = deque(self.statuses, maxlen=window)

    def add(
        self, result: CheckResult, at: datetime, keep: timedelta, pattern_keep: timedelta
    ) -> None:
        self.last_seen = at
        if self.first_result is None:
            self.first_result = at
        self.last_result = result
        self.statuses.append(result.status)
        if result.status is Status.FAILED:
            self.consecutive_failures += 1
        else:
            self.consecutive_failures = 0
        samples = {m.name: float(m.value) for m in result.metrics}
        for name, value in (
            ("response_time_ms", result.response_time_ms),
            ("cpu_usage", result.cpu_usage),
            ("memory_usage", result.memory_usage),
        ):
            if value is not None:
                samples.setdefault(name, float(value))
        horizon = at - keep
        for name, value in samples.items():
            series = self.metrics.setdefault(name, deque())
            series.append((at, value))
            while len(series) > 1 and series[0][0] < horizon:
                series.popleft()
        errors = [e for e in result.logs if e.level.upper() in ERROR_LEVELS]
        if errors:
            self.errors.append((at, len(errors)))
            for entry in errors:
                pattern, fp = pattern_of(entry.level, entry.message)
                self.patterns.append((at, fp))
                self.texts[fp] = pattern
                self.book.setdefault(fp, at)
        self.trim(horizon, at - pattern_keep)

    def add_error(self, at: datetime, fp: int, pattern: str = "") -> None:
        self.errors.append((at, 1))
        if fp:
            self.patterns.append((at, fp))
            if pattern:
                self.texts[fp] = pattern
            self.book.setdefault(fp, at)

    def trim(self, horizon: datetime, pattern_horizon: datetime) -> None:
        while self.errors and self.errors[0][0] < horizon:
            self.errors.popleft()
        gone = False
        while self.patterns and self.patterns[0][0] < pattern_horizon:
            self.patterns.popleft()
            gone = True
        if gone and self.texts:  # forget the texts of patterns no longer in the window
            kept = {fp for _, fp in self.patterns}
            self.texts = {fp: text for fp, text in self.texts.items() if fp in kept}

    def seed(self, statuses: list[Status], last_seen: datetime | None) -> None:
        """Oldest first, from storage after a restart."""
        for status in statuses:
            self.statuses.append(status)
            self.consecutive_failures = (
                self.consecutive_failures + 1 if status is Status.FAILED else 0
            )
        self.last_seen = last_seen or self.last_seen

    def update_flapping(self, high: float, low: float) -> bool | None:
        """True when flapping starts, False when it stops, None when unchanged.

        Flapping starts only over a full window of checks (as Nagios' flap detection);
        a service flapping already settles over the checks held when fewer: after the
        window is raised (by a reload or a restart with a larger ``flapping.window``) it
        would otherwise stay flapping until the new window filled, holding every alert
        of a steady outage meanwhile (atk14e: 1,000 checks, 16.7 h at 60 s); after a
        reload raised it, over the newest checks of the window flapping was declared
        under (:attr:`settle_window`), so the checks held from before count no longer
        than they did (atk16: ~50-80 steady checks over all those held)."""
        held = len(self.statuses)
        if held < (self.flap_window if not self.flapping else 2):
            return None
        judged = list(self.statuses)
        if self.settle_window is not None:
            if held < self.flap_window and self.flapping:
                judged = judged[-self.settle_window :]
            else:
                self.settle_window = None  # the new window is full, or settled already
        self.flap_share = percent_state_change(judged)
        if not self.flapping and self.flap_share > high:
            self.flapping = True
            return True
        if self.flapping and self.flap_share < low:
            self.flapping = False
            self.settle_window = None
            return False
        return None

    def metric_values(self, name: str, since: datetime | None) -> list[float]:
        series = self.metrics.get(name)
        if not series:
            return []
        if since is None:
            return [series[-1][1]] if series[-1][0] == self.last_seen else []
        return [value for at, value in series if at >= since]

    def error_count(self, since: datetime) -> int:
        return sum(count for at, count in self.errors if at >= since)

    def pattern_counts(self, since: datetime) -> dict[int, int]:
        counts: dict[int, int] = {}
        for at, fp in self.patterns:
            if at >= since:
                counts[fp] = counts.get(fp, 0) + 1
        return counts
