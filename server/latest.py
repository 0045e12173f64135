"""Each service's newest check result, kept in memory as it is recorded.

The daemon reads its own figures from here (``/metrics`` per-service gauges),
so they are as fresh as the last check and need no ClickHouse: during an
outage they are exactly what an operator must still see.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, NamedTuple

from server.recorder import RowSink


class Latest(NamedTuple):
    """The fields of a ``service_status`` row the gauges need."""

    at: datetime
    status_code: int
    response_time_ms: int | None


class LatestResults:
    """A row sink in front of the writer that remembers the newest status row per service."""

    def __init__(self, sink: RowSink) -> None:
        self.sink = sink
        self._rows: dict[str, Latest] = {}
        self._lock = threading.Lock()

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        if table == "service_status":
            # (service_id, timestamp, status_code, message, type, stack, details, rt, …)
            latest = Latest(row[1], int(row[2]), row[7])
            with self._lock:
                current = self._rows.get(row[0])
                if current is None or latest.at >= current.at:
                    self._rows[row[0]] = latest
        self.sink.add(table, row)

    def get(self, service_id: str) -> Latest | None:
        return self._rows.get(service_id)
