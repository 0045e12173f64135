"""An alert engine wired to in-memory row and notice sinks, driven by a fake clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from checkers.base import CheckResult, LogEntry, Metric, Status
from server.alerting.engine import ALERT_EVENT_COLUMNS, AlertEngine
from server.config import parse_config
from server.notify.base import Notice
from tests.support.clock import FakeClock

SERVICES = """
services:
  - {id: db, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}}
  - {id: api, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}}
  - {id: web, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}}
relations:
  - {source: api, target: db}
  - {source: web, target: api}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
  mail: {type: webhook, url: "http://127.0.0.1:9/mail"}
"""


class Harness:
    def __init__(self, rules_yaml: str, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.config = parse_config(SERVICES + rules_yaml, "test.yaml")
        self.rows: list[tuple[str, tuple[Any, ...]]] = []
        self.notices: list[Notice] = []
        self.engine = AlertEngine(self.config, self, self, self.clock)

    # sinks
    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows.append((table, row))

    def submit(self, notice: Notice) -> None:
        self.notices.append(notice)

    # driving
    def result(
        self,
        service: str,
        status: Status,
        *,
        advance: float = 0,
        message: str = "",
        metrics: dict[str, float] | None = None,
        errors: int = 0,
        response_ms: int | None = None,
    ) -> datetime:
        at = self.clock.advance(advance)
        result = CheckResult(
            status,
            message or status.name.lower(),
            response_time_ms=response_ms,
            metrics=[Metric(k, v) for k, v in (metrics or {}).items()],
            logs=[LogEntry("ERROR", f"boom {i}") for i in range(errors)],
        )
        self.engine.observe(service, result, at)
        return at

    def tick(self, advance: float = 0) -> None:
        self.engine.tick(self.clock.advance(advance))

    # reading
    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        rows = [dict(zip(ALERT_EVENT_COLUMNS, r, strict=True)) for t, r in self.rows]
        return [r for r, (t, _) in zip(rows, self.rows, strict=True)
                if t == "alert_events" and (event is None or r["event"] == event)]  # fmt: skip

    def transitions(self) -> list[tuple[str, str, str, str]]:
        return [
            (e["service_id"], e["from_state"], e["to_state"], e["delivery_result"])
            for e in self.events("transition")
        ]

    def told(self) -> list[tuple[str, str, str]]:
        """(kind, service, state) of every notice, one per channel send."""
        return [(n.kind, item.service_id, item.state) for n in self.notices for item in n.items]

    def state(self, alert_id: str) -> str:
        alert = self.engine.alert(alert_id)
        assert alert is not None
        return alert.state.value
