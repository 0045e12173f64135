"""A chDB store holding six hours of real recorder output for three services, and a
live alert engine over the same results: what the dashboard tests look at.

db fails in the last hour (its alert fires), api depends on db and fails too
(inhibited), web is OK throughout; db writes an ERROR log with a stack trace.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from checkers.base import CheckResult, LogEntry, Metric, Status
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = """
alert_rules:
  - {id: down, name: Service down, service: "*", condition: "status >= FAILED",
     channels: [hook], severity: critical}
"""


class Svc:
    def __init__(self, sid: str, stack: str = "default") -> None:
        self.id, self.type, self.stack = sid, "tcp", stack


def build(root: Path) -> tuple[EmbeddedStorage, Harness]:
    store = EmbeddedStorage(root / "db", "monitor")
    apply_schema(store, Target("monitor"))
    h = Harness(RULES, FakeClock(NOW - timedelta(hours=6)))
    recorder = Recorder(h, listener=h.engine)
    step = 300
    for i in range(6 * 3600 // step):
        at = h.clock.advance(step if i else 0)
        late = at >= NOW - timedelta(hours=1)
        db = CheckResult(
            Status.FAILED if late else Status.OK,
            "connection refused" if late else "accepting connections",
            response_time_ms=None if late else 20 + i,
            cpu_usage=10.0 + i % 5,
            memory_usage=200.0 + i,
            metrics=[Metric("connections", 40 + i % 7, "count")],
            logs=[LogEntry("ERROR", "pool exhausted", stack_trace="Traceback: boom")]
            if late and i % 4 == 0
            else [],
        )
        recorder.record(Svc("db"), db, at)
        api_status = Status.FAILED if late else Status.DEGRADED if i % 9 == 0 else Status.OK
        message = "upstream db down" if late else "ok"
        api = CheckResult(api_status, message, response_time_ms=120 + i % 30)
        recorder.record(Svc("api"), api, at)
        recorder.record(Svc("web"), CheckResult(Status.OK, "200 OK", response_time_ms=45), at)
        h.deliver()  # what the channel workers do in the daemon
    h.clock.advance(NOW.timestamp() - h.clock.now().timestamp())
    h.log.sync()  # the rows the alert log owes the disk
    for table, columns in WRITTEN_TABLES.items():
        rows = [row for t, row in h.rows if t == table]
        if rows:
            store.insert(table, columns, rows)
    h.rows.clear()
    return store, h
