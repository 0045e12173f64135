"""Ninety days of realistic recorder output for the dashboard's layout and history tests.

Four services and the daemon's own row, written by the real :class:`Recorder` with a
live alert engine, as the checkers would report them:

- ``shop`` (http, stack web, SLO 99.5 % over 30 d): checked for 90 days; a three-hour
  outage ten days ago; response time as a column *and* as a metric of the same name
  (as the HTTP checker reports it), plus ``http_status`` and ``cert_expiry_days``.
- ``search`` (http, stack web): two hours old, failing for the last 20 minutes.
- ``worker`` (python_process, stack jobs, SLO 99.9 % over 7 d): 40 days; CPU and
  memory (a percent) as columns, RSS and friends as metrics, ERROR logs.
- ``host`` (host, stack infrastructure): three days; ``disk_used_percent`` per mount.
- ``lightbulb``: the daemon's self-monitoring metrics for the last day.

The last day has a check every 5 minutes and every metric; older days a check every
30 minutes. Yesterday's daily report is stored too.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from checkers.base import CheckResult, LogEntry, Metric, Status
from server.alerting.engine import AlertEngine
from server.alerting.log import AlertLog
from server.analytics.report import build as build_report
from server.analytics.report import publish
from server.config.models import Config
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MB = 2**20
CONFIG = """
clickhouse: {retention_days: 3650}  # TTLs count from the real date, NOW is fixed
services:
  - {id: shop, label: Shop front, type: http, stack: web, interval: 5m,
     http: {url: "http://127.0.0.1:9/"}, slo: {target: 99.5, window: 30d}}
  - {id: search, label: Search API, type: http, stack: web, interval: 1m,
     http: {url: "http://127.0.0.1:9/search"}}
  - {id: worker, label: Order worker, type: python_process, stack: jobs, interval: 5m,
     python_process: {name: worker}, slo: {target: 99.9, window: 7d}}
  - {id: host, label: This machine, type: host, stack: infrastructure, interval: 5m}
relations:
  - {source: shop, target: worker}
  - {source: search, target: host}
  - {source: worker, target: host}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
alert_rules:
  - {id: down, name: Service down, service: "*", condition: "status >= FAILED",
     channels: [hook], severity: critical}
silences:
  - {id: nightly, service: worker, cron: "0 3 * * *", duration: 30m, comment: nightly backup}
  - {id: upgrade, service: "stack:web", start: "2026-11-24T06:00:00Z",
     end: "2026-11-24T07:00:00Z", comment: database upgrade}
  - {id: quiet-rule, rule: down, start: "2026-11-23T00:00:00Z", end: "2026-11-23T01:00:00Z"}
status_page:
  title: Example Corp status
  groups:
    - {name: Website, services: ["stack:web"]}
    - {name: Back office, services: [worker, host]}
"""


class Svc:
    def __init__(self, sid: str, type_: str, stack: str) -> None:
        self.id, self.type, self.stack = sid, type_, stack


def times(days: float, every: timedelta) -> list[datetime]:
    """Check times from ``days`` ago to NOW: every 30 min, then ``every`` in the last day."""
    start, recent = NOW - timedelta(days=days), NOW - timedelta(days=1)
    out, at = [], start
    while at < NOW:
        out.append(at)
        at += timedelta(minutes=30) if at < recent else every
    return out


def shop(at: datetime, i: int) -> CheckResult:
    outage = NOW - timedelta(days=10, hours=6) <= at < NOW - timedelta(days=10, hours=3)
    if outage:
        return CheckResult(Status.FAILED, "GET http://shop/: connection refused")
    ms = 80 + 25 * math.sin(i / 9) + (i % 7) * 3
    recent = at >= NOW - timedelta(days=1)
    metrics = [
        Metric("response_time_ms", ms, "ms"),
        Metric("http_status", 200),
        Metric("cert_expiry_days", 41 - (NOW - at).total_seconds() / 86400, "days"),
    ]
    return CheckResult(
        Status.OK,
        f"200 OK in {ms:.0f} ms",
        response_time_ms=int(ms),
        metrics=metrics if recent else [],
    )


def worker(at: datetime, i: int) -> CheckResult:
    rss = 22.9 * MB + (i % 40) * 0.05 * MB
    recent = at >= NOW - timedelta(days=1)
    slow = at.hour == 9 and at.date() == NOW.date()
    logs = [
        LogEntry(
            "ERROR",
            f"order {1000 + i} failed: payment gateway timed out after 5000 ms",
            stack_trace="Traceback (most recent call last):\n  File worker.py\nTimeoutError",
        )
    ]
    metrics = [
        Metric("cpu_percent", 3 + i % 5, "percent"),
        Metric("memory_percent", round(rss / (16 * 2**30) * 100, 3), "percent"),
        Metric("rss_bytes", rss, "bytes"),
        Metric("num_threads", 12 + i % 3, "count"),
        Metric("num_fds", 40 + i % 9, "count"),
        Metric("uptime_seconds", (at - (NOW - timedelta(days=40))).total_seconds(), "seconds"),
        Metric("restarts", 1, "count"),
    ]
    return CheckResult(
        Status.DEGRADED if slow else Status.OK,
        "pid 4242: num_fds 61 > 60" if slow else "pid 4242 running",
        cpu_usage=3.0 + i % 5,
        memory_usage=round(rss / (16 * 2**30) * 100, 3),
        metrics=metrics if recent else [],
        logs=logs if recent and i % 37 == 0 else [],
    )


def host(at: datetime, i: int) -> CheckResult:
    metrics = [
        Metric("cpu_percent", 20 + 15 * math.sin(i / 12), "percent"),
        Metric("memory_percent", 61.5, "percent"),
        Metric("memory_available_bytes", 6.2 * 2**30 - i * MB, "bytes"),
        Metric("load1", 0.6 + (i % 10) / 10),
        Metric("disk_used_percent", 71.2, "percent", {"mount": "/"}),
        Metric("disk_used_percent", 34.0, "percent", {"mount": "/boot"}),
        Metric("net_bytes_sent", 9.1e9 + i * 2.5e6, "bytes"),
    ]
    recent = at >= NOW - timedelta(days=1)
    return CheckResult(Status.OK, "cpu 20%, memory 61.5%", metrics=metrics if recent else [])


def search(at: datetime, i: int) -> CheckResult:
    if at >= NOW - timedelta(minutes=20):
        return CheckResult(Status.FAILED, "GET http://search/: HTTP 503 Service Unavailable")
    return CheckResult(
        Status.OK,
        "200 OK",
        response_time_ms=140 + i % 20,
        metrics=[Metric("response_time_ms", 140 + i % 20, "ms")],
    )


def daemon(at: datetime, i: int) -> CheckResult:
    metrics = [
        Metric("scheduler_lag_p50_ms", 1.2 + i % 3 / 10, "ms"),
        Metric("scheduler_lag_p99_ms", 8 + i % 11, "ms"),
        Metric("checks_in_flight", i % 4, "count"),
        Metric("write_queue_rows", 120 + i % 50, "rows"),
        Metric("spool_bytes", 0, "bytes"),
        Metric("spool_dropped_rows", 0, "rows"),
        Metric("write_latency_ms", 14 + i % 6, "ms"),
        Metric("write_errors", 0, "count"),
        Metric("rows_written", 1_000_000 + i * 2400, "rows"),
        Metric("checks_total", 20_000 + i * 1200, "count"),
        Metric("check_timeouts", 2, "count"),
        Metric("rss_bytes", 96 * MB + i * 0.1 * MB, "bytes"),
    ]
    return CheckResult(
        Status.OK,
        f"{20_000 + i * 1200} checks, lag p99 {8 + i % 11} ms",
        cpu_usage=4.0 + i % 3,
        memory_usage=0.6,
        metrics=metrics,
    )


PLAN = [  # service, type, stack, days of history, interval in the last day, result
    ("shop", "http", "web", 90, timedelta(minutes=5), shop),
    ("search", "http", "web", 2 / 24, timedelta(minutes=1), search),
    ("worker", "python_process", "jobs", 40, timedelta(minutes=5), worker),
    ("host", "host", "infrastructure", 3, timedelta(minutes=5), host),
    ("lightbulb", "lightbulb", "lightbulb", 1, timedelta(minutes=15), daemon),
]


def config() -> Config:
    return parse_config(CONFIG, "dashboard.yaml", {})


def build(root: Path) -> tuple[EmbeddedStorage, Config, FakeClock, AlertEngine]:
    """The store (schema applied, history written), its config, a clock at NOW, the engine."""
    store = EmbeddedStorage(root / "db", "monitor")
    apply_schema(store, Target("monitor", retention_days=3650))
    cfg = config()
    clock = FakeClock(NOW - timedelta(days=90))
    sink = MemoryRows()
    engine = AlertEngine(cfg, AlertLog(sink, store, clock), None, clock)  # no notices sent
    recorder = Recorder(sink, listener=engine)
    events = sorted(
        (at, i, sid, type_, stack, make)
        for sid, type_, stack, days, every, make in PLAN
        for i, at in enumerate(times(days, every))
    )
    for at, i, sid, type_, stack, make in events:
        clock.advance((at - clock.now()).total_seconds())
        recorder.record(Svc(sid, type_, stack), make(at, i), at)
        if len(sink.rows) > 20_000:
            sink.insert_into(store)
    clock.advance((NOW - clock.now()).total_seconds())
    engine.tick(NOW)
    sink.insert_into(store)
    yesterday = NOW.date() - timedelta(days=1)
    publish(build_report(store, cfg, yesterday, NOW), sink, None, cfg, None)
    sink.insert_into(store)
    return store, cfg, clock, engine


def day(offset: int) -> date:
    return NOW.date() + timedelta(days=offset)
