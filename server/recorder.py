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
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        """``redact(value)``: masks secrets in a value (:meth:`server.core.redact.Redactor.value`),
        applied once per result, with the service's id, type and stack, before any row
        is built or the listener is told: every row and the listener see only its
        output, so neither needs to redact again (once per row cost 8 scans a check)."""
        self.sink = sink
        self.listener = listener
        self.adjust = adjust  # e.g. learned DEGRADED, applied before anything is written
        self.redact = redact
        self.last_status: dict[str, Status] = dict(last_status or {})
        self._lock = threading.Lock()
        # Until storage says what each service's status was before this run (anchor),
        # the first result of a service with none known, to compare then: (status,
        # time, message). None once anchored.
        self._first: dict[str, tuple[Status, datetime, str]] | None = {}

    def anchor(self, stored: dict[str, Status]) -> None:
        """The statuses storage holds from before this run (service id -> status).

        Normally called before the first result; when storage was unreachable at
        start, later: the change from the stored status to each service's first
        result of this run is then written as it would have been (at that result's
        time), once. Later calls (storage lost and back again) only fill gaps.
        """
        with self._lock:
            first, self._first = self._first, None
            for sid, status in stored.items():
                self.last_status.setdefault(sid, status)
        for sid, (status, at, message) in (first or {}).items():
            before = stored.get(sid)
            if before is not None and before != status:
                self._transition(sid, at, before, status, message)

    def record(self, service: ServiceInfo, result: CheckResult, at: datetime) -> None:
        if self.adjust is not None:
            result = self.adjust(service, result, at)
        sid, kind, stack = service.id, service.type, service.stack
        if self.redact is not None:
            sid, kind, stack, result = self.redact((sid, kind, stack, result))
        self.sink.add(
            "service_status",
            (
                sid,
                at,
                int(result.status),
                result.message,
                kind,
                stack,
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
            if previous is None and self._first is not None:
                self._first[sid] = (result.status, at, result.message)
        if previous is not None and previous != result.status:
            self._transition(sid, at, previous, result.status, result.message)
        if self.listener is not None:
            self.listener.observe(sid, result, at)

    def _transition(
        self, sid: str, at: datetime, previous: Status, status: Status, message: str
    ) -> None:
        """The log row of a status change (source ``lightbulb.transition``)."""
        self.sink.add(
            "service_logs",
            (
                sid,
                at,
                TRANSITION_LEVEL[status],
                f"status changed {previous.name} -> {status.name}: {message}",
                "lightbulb.transition",
                None,
                None,
                {
                    "previous_status": previous.name,
                    "new_status": status.name,
                    "previous_code": str(int(previous)),
                    "new_code": str(int(status)),
                },
                "",
                0,
            ),
        )
