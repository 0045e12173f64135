"""Turn check results into rows of service_status, service_metrics and service_logs.

Also notices status transitions (OK -> FAILED …) and writes each as a log row
carrying the previous and new status, so the history of a service's state is
in the database, not in the daemon's memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from checkers.base import CheckResult, Status
from server.logs.patterns import pattern_of

STATUS_COLUMNS = (
    "service_id",
    "timestamp",
    "status_code",
    "message",
    "service_type",
    "stack",
    "details",
    "response_time_ms",
    "cpu_usage",
    "memory_usage",
)
METRIC_COLUMNS = ("service_id", "timestamp", "metric_name", "metric_value", "metric_unit", "tags")
LOG_COLUMNS = (
    "service_id",
    "timestamp",
    "log_level",
    "message",
    "source",
    "error_code",
    "stack_trace",
    "context",
    "pattern",
    "fingerprint",
)
TABLE_COLUMNS = {
    "service_status": STATUS_COLUMNS,
    "service_metrics": METRIC_COLUMNS,
    "service_logs": LOG_COLUMNS,
}
TRANSITION_LEVEL = {
    Status.OK: "INFO",
    Status.DEGRADED: "WARN",
    Status.FAILED: "ERROR",
    Status.STARTING: "INFO",
    Status.STOPPED: "WARN",
    Status.UNKNOWN: "WARN",
}


class RowSink(Protocol):
    def add(self, table: str, row: tuple[Any, ...]) -> None: ...


class ServiceInfo(Protocol):
    """What a status row needs of a service (a config entry or the daemon itself)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def stack(self) -> str: ...


class ResultListener(Protocol):
    """Told of every recorded result (the alert engine)."""

    def observe(self, service_id: str, result: CheckResult, at: datetime) -> None: ...


class Recorder:
    def __init__(
        self,
        sink: RowSink,
        last_status: dict[str, Status] | None = None,
        listener: ResultListener | None = None,
        adjust: Callable[[Any, CheckResult, datetime], CheckResult] | None = None,
    ) -> None:
        self.sink = sink
        self.listener = listener
        self.adjust = adjust  # e.g. learned DEGRADED, applied before anything is written
        self.last_status: dict[str, Status] = dict(last_status or {})
        self._lock = threading.Lock()

    def record(self, service: ServiceInfo, result: CheckResult, at: datetime) -> None:
        if self.adjust is not None:
            result = self.adjust(service, result, at)
        sid = service.id
        self.sink.add(
            "service_status",
            (
                sid,
                at,
                int(result.status),
                result.message,
                service.type,
                service.stack,
                json.dumps(result.details, default=str, separators=(",", ":")),
                None if result.response_time_ms is None else int(result.response_time_ms),
                result.cpu_usage,
                result.memory_usage,
            ),
        )
        for metric in result.metrics:
            self.sink.add(
                "service_metrics",
                (sid, at, metric.name, float(metric.value), metric.unit, dict(metric.tags)),
            )
        for entry in result.logs:
            self.sink.add(
                "service_logs",
                (
                    sid,
                    at,
                    entry.level,
                    entry.message,
                    entry.source,
                    entry.error_code,
                    entry.stack_trace,
                    dict(entry.context),
                    *pattern_of(entry.level, entry.message),
                ),
            )
        with self._lock:
            previous = self.last_status.get(sid)
            self.last_status[sid] = result.status
        if previous is not None and previous != result.status:
            self.sink.add(
                "service_logs",
                (
                    sid,
                    at,
                    TRANSITION_LEVEL[result.status],
                    f"status changed {previous.name} -> {result.status.name}: {result.message}",
                    "lightbulb.transition",
                    None,
                    None,
                    {
                        "previous_status": previous.name,
                        "new_status": result.status.name,
                        "previous_code": str(int(previous)),
                        "new_code": str(int(result.status)),
                    },
                    "",
                    0,
                ),
            )
        if self.listener is not None:
            self.listener.observe(sid, result, at)
