"""An alert engine with its real delivery pipeline, driven by a fake clock.

Rows go to an in-memory sink; notices go through the real dispatcher (grouping,
dedupe, outbox, retry) to a real loopback webhook receiver, one path per
harness, and :meth:`Harness.deliver` runs the pipeline synchronously.
"""

from __future__ import annotations

import functools
import random
import uuid
from datetime import datetime
from typing import Any

from checkers.base import CheckResult, LogEntry, Metric, Status
from server.alerting.engine import AlertEngine
from server.alerting.log import TABLES, AlertLog
from server.notify.dispatcher import Dispatcher
from server.storage import Storage
from server.validation import parse_config
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver, Received
from tests.support.rows import MemoryRows

SERVICES = """
services:
  - {{id: db, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
  - {{id: api, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
  - {{id: web, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
relations:
  - {{source: api, target: db}}
  - {{source: web, target: api}}
channels:
  hook: {{type: webhook, url: "{url}/hook"}}
  mail: {{type: webhook, url: "{url}/mail"}}
"""


@functools.cache
def shared_receiver() -> HttpReceiver:
    """One receiver for every harness of the test process (each uses its own path)."""
    return HttpReceiver()


class Harness(MemoryRows):
    def __init__(
        self,
        rules_yaml: str,
        clock: FakeClock | None = None,
        *,
        group_wait: str = "0s",
        storage: Storage | None = None,
        path: str | None = None,
    ) -> None:
        """``storage``: where the alert log reads (restore); ``path``: the receiver path
        of an earlier harness, to stand for the same daemon after a restart."""
        self.clock = clock or FakeClock()
        self.receiver = shared_receiver()
        self.path = path or f"/{uuid.uuid4().hex[:10]}"
        text = SERVICES.format(url=self.receiver.url + self.path) + rules_yaml
        if "\nalerting:" not in rules_yaml:
            text += f"\nalerting: {{group_wait: {group_wait}}}\n"
        self.config = parse_config(text, "test.yaml")
        super().__init__()  # the rows, in memory: this harness is the alert log's sink
        self.log = AlertLog(self, storage, self.clock)
        self.dispatcher = Dispatcher(self.config, self.clock, self.log, rng=random.Random(7))
        self.engine = AlertEngine(self.config, self.log, self.dispatcher, self.clock)

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
        self.deliver()
        return at

    def tick(self, advance: float = 0) -> None:
        self.engine.tick(self.clock.advance(advance))
        self.deliver()

    def deliver(self) -> int:
        """Run the delivery stages for what is due now; returns send attempts."""
        return self.dispatcher.step()

    # reading
    def sent(self) -> list[Received]:
        """Every notice the receiver accepted for this harness, in order."""
        return self.receiver.answered(self.path)

    def told(self, channel: str = "hook") -> list[tuple[str, str, str]]:
        """(kind, service, state) of every alert a channel was told, in order."""
        return [
            (r.json["kind"], a["service_id"], a["status"])
            for r in self.sent()
            if r.path == f"{self.path}/{channel}"
            for a in r.json["alerts"]
        ]

    def kinds(self, channel: str = "hook") -> list[str]:
        return [r.json["kind"] for r in self.sent() if r.path == f"{self.path}/{channel}"]

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        self.log.sync()
        columns = TABLES["alert_events"]
        rows = [dict(zip(columns, r, strict=True)) for t, r in self.rows if t == "alert_events"]
        return sorted(
            (r for r in rows if event is None or r["event"] == event),
            key=lambda r: r["timestamp"],
        )

    def persist(self, store: Storage) -> None:
        """What the writer does with the rows, in one go."""
        self.log.sync()
        self.insert_into(store, TABLES)

    def transitions(self) -> list[tuple[str, str, str, str]]:
        return [
            (e["service_id"], e["from_state"], e["to_state"], e["delivery_result"])
            for e in self.events("transition")
        ]

    def state(self, alert_id: str) -> str:
        alert = self.engine.alert(alert_id)
        assert alert is not None
        return alert.state.value
