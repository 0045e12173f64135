"""Anomaly baselines: normal per service x metric x hour of the week, computed in SQL.

One ``INSERT ... SELECT`` aggregates the last ``baselines.window`` of checks,
checker metrics and hourly ERROR-log counts into ``anomaly_baselines``; Python
only loads the (small) result to answer "is this value normal for now?".
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from checkers.base import CheckResult, Status
from server.config.models import BaselinesConfig
from server.core.measures import COLUMN_UNITS
from server.storage import Storage

log = logging.getLogger("lightbulb.baselines")
ERROR_LOGS = "error_logs"

COMPUTE_SQL = """
INSERT INTO {db}.anomaly_baselines
SELECT service_id, metric, toDayOfWeek(ts) AS day_of_week, toHour(ts) AS hour_of_day,
       count() AS samples, avg(v) AS mean, stddevPop(v) AS stddev,
       quantileExact(0.5)(v) AS median, quantileExact(0.95)(v) AS p95,
       quantileExact(0.99)(v) AS p99,
       mean - {k:Float64} * stddev AS lower, mean + {k:Float64} * stddev AS upper,
       {days:UInt16} AS window_days, {now:DateTime64(3, 'UTC')} AS computed_at
FROM (
    SELECT service_id, 'response_time_ms' AS metric, timestamp AS ts,
           toFloat64(response_time_ms) AS v
    FROM {db}.service_status
    WHERE timestamp >= {since:DateTime64(3, 'UTC')} AND response_time_ms IS NOT NULL
    UNION ALL
    SELECT service_id, 'cpu_usage', timestamp, toFloat64(cpu_usage)
    FROM {db}.service_status
    WHERE timestamp >= {since:DateTime64(3, 'UTC')} AND cpu_usage IS NOT NULL
    UNION ALL
    SELECT service_id, 'memory_usage', timestamp, toFloat64(memory_usage)
    FROM {db}.service_status
    WHERE timestamp >= {since:DateTime64(3, 'UTC')} AND memory_usage IS NOT NULL
    UNION ALL
    SELECT service_id, metric_name, timestamp, metric_value
    FROM {db}.service_metrics
    WHERE timestamp >= {since:DateTime64(3, 'UTC')}
      AND metric_name NOT IN {columns:Array(String)}
    UNION ALL
    SELECT service_id, 'error_logs', toDateTime64(hour, 3, 'UTC'), toFloat64(n)
    FROM (
        SELECT service_id, toStartOfHour(timestamp) AS hour, count() AS n
        FROM {db}.service_logs
        WHERE timestamp >= {since:DateTime64(3, 'UTC')}
          AND log_level IN ('ERROR', 'CRITICAL', 'FATAL')
        GROUP BY service_id, hour
    )
)
GROUP BY service_id, metric, day_of_week, hour_of_day
"""

LOAD_SQL = """
SELECT service_id, metric, day_of_week, hour_of_day,
       argMax(samples, computed_at) AS samples, argMax(mean, computed_at) AS mean,
       argMax(stddev, computed_at) AS stddev, argMax(p99, computed_at) AS p99,
       argMax(lower, computed_at) AS lower, argMax(upper, computed_at) AS upper,
       max(computed_at) AS computed
FROM {db}.anomaly_baselines
GROUP BY service_id, metric, day_of_week, hour_of_day
"""


@dataclass(frozen=True)
class Baseline:
    samples: int
    mean: float
    stddev: float
    p99: float
    lower: float
    upper: float

    def z(self, value: float) -> float:
        if self.stddev == 0:
            return 0.0 if value == self.mean else math.copysign(math.inf, value - self.mean)
        return (value - self.mean) / self.stddev


Key = tuple[str, str, int, int]  # service, metric, ISO day of week (1 = Monday), hour


def key_for(service_id: str, metric: str, at: datetime) -> Key:
    return (service_id, metric, at.isoweekday(), at.hour)


class Baselines:
    """The loaded baselines, shared by the alert engine, the recorder and the dashboard."""

    def __init__(self, config: BaselinesConfig) -> None:
        self.config = config
        self._table: dict[Key, Baseline] = {}
        self.computed_at: datetime | None = None
        self._lock = threading.Lock()

    def compute(self, storage: Storage, now: datetime) -> int:
        """Recompute in ClickHouse, then load; returns the number of baselines."""
        db = storage.database
        storage.execute(
            COMPUTE_SQL.replace("{db}", db),
            {
                "k": self.config.k,
                "days": max(1, round(self.config.window.total_seconds() / 86400)),
                "now": now,
                "since": now - self.config.window,
                # a checker metric named like a column (HTTP's response_time_ms) is the
                # column's value again: counting both doubled every HTTP check's samples
                "columns": list(COLUMN_UNITS),
            },
        )
        return self.load(storage)

    def load(self, storage: Storage) -> int:
        rows = storage.query(LOAD_SQL.replace("{db}", storage.database))
        table = {
            (r["service_id"], r["metric"], int(r["day_of_week"]), int(r["hour_of_day"])): Baseline(
                int(r["samples"]), r["mean"], r["stddev"], r["p99"], r["lower"], r["upper"]
            )
            for r in rows
        }
        with self._lock:
            self._table = table
            self.computed_at = max((r["computed"] for r in rows), default=None)
        return len(table)

    def stale(self, now: datetime) -> bool:
        return self.computed_at is None or now - self.computed_at >= self.config.every

    def get(self, service_id: str, metric: str, at: datetime) -> Baseline | None:
        """The baseline for this hour of the week, if it has enough samples to judge by."""
        baseline = self._table.get(key_for(service_id, metric, at))
        if baseline is None or baseline.samples < self.config.min_samples:
            return None
        return baseline

    def band(self, service_id: str, metric: str, at: datetime) -> tuple[float, float] | None:
        baseline = self.get(service_id, metric, at)
        return None if baseline is None else (baseline.lower, baseline.upper)


class LearnedDegraded:
    """OK -> DEGRADED when response time stays above the learned p99 for ``learned_degraded_for``.

    Called by the recorder before a result is written, so the stored status,
    the transition log and the alerts all see the same DEGRADED.
    """

    def __init__(self, baselines: Baselines) -> None:
        self.baselines = baselines
        self._above_since: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def adjust(self, service: Any, result: CheckResult, at: datetime) -> CheckResult:
        if not getattr(service, "learned_degraded", False) or result.response_time_ms is None:
            return result
        baseline = self.baselines.get(service.id, "response_time_ms", at)
        with self._lock:
            if baseline is None or result.response_time_ms <= baseline.p99:
                self._above_since.pop(service.id, None)
                return result
            since = self._above_since.setdefault(service.id, at)
        hold: timedelta = getattr(service, "learned_degraded_for", timedelta(0))
        if result.status is not Status.OK or at - since < hold:
            return result
        message = (
            f"{result.message}; response time {result.response_time_ms} ms is above the learned "
            f"p99 of {baseline.p99:.0f} ms for this hour of the week"
        )
        details = {**result.details, "learned_p99_ms": round(baseline.p99, 1)}
        return CheckResult(
            Status.DEGRADED, message, details, result.response_time_ms, result.cpu_usage,
            result.memory_usage, result.metrics, result.logs,
        )  # fmt: skip
