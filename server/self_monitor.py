"""The daemon's account of itself: its figures and its own ``service_status`` row.

:class:`SelfMonitor` answers ``/metrics`` and ``/readyz`` (the web's
``DaemonState``) and records the daemon as a service (``SELF_ID``) every
``SELF_INTERVAL`` (server/periodic.py): scheduler lag, write queue and spool,
alerts firing, notices, its own CPU and memory. Everything is read from memory,
so it answers while ClickHouse is away. The daemon (:mod:`server.daemon`) wires
it; nothing here starts or stops anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from checkers.base import CheckResult, Metric, Status
from server.alerting.engine import AlertEngine
from server.config.checks import RESERVED_ID
from server.config.models import ServiceConfig
from server.core.clock import Clock
from server.latest import LatestResults
from server.logs.pool_stats import PoolStats
from server.notify.dispatcher import Dispatcher
from server.recorder import Recorder
from server.scheduler import CheckScheduler
from server.web.admission import DoorStats
from server.web.context import ServiceState
from server.writer import Writer

log = logging.getLogger("lightbulb.writer")
SELF_ID = RESERVED_ID


class SelfService:
    """The daemon's own row in service_status."""

    id = SELF_ID
    type = "lightbulb"
    stack = "lightbulb"


class SelfMonitor:
    """Figures of the running daemon's parts; ``services()`` gives the configured
    services as they are now (a reload changes them)."""

    def __init__(
        self, *, scheduler: CheckScheduler, writer: Writer, alerts: AlertEngine,
        dispatcher: Dispatcher, latest: LatestResults, recorder: Recorder, clock: Clock,
        services: Callable[[], Sequence[ServiceConfig]], door: DoorStats | None = None,
        held: Callable[[], int] | None = None, ingest: PoolStats | None = None,
    ) -> None:  # fmt: skip
        self.scheduler = scheduler
        self.writer = writer
        self.alerts = alerts
        self.dispatcher = dispatcher
        self.latest = latest
        self.recorder = recorder
        self.clock = clock
        self.services = services
        self.door = door or DoorStats()  # the web server's admission (server/web/admission.py)
        self.held = held or (lambda: 0)
        self.ingest = ingest or PoolStats()
        self._said_hung = False  # an ERROR said for the insert hung now (_say_hung)

    def push_refusals(self) -> int:
        """Pushes answered 429/503: by the writer and pool (counted in the writer's stats)
        and at the web server's door (its own counts, one thread writes them)."""
        return self.writer.stats.busy_refusals + self.door.refused + self.door.stopping

    def health(self) -> dict[str, Any]:
        """Figures for /metrics and /readyz."""
        stats, wstats = self.scheduler.stats, self.writer.stats
        return {
            "scheduler_running": self.scheduler.running,
            "storage_reachable": self.writer.answering,
            "storage_writable": self.writer.reachable,
            "lag_p50_ms": stats.lag_percentile(0.5),
            "lag_p99_ms": stats.lag_percentile(0.99),
            "checks_total": stats.checks,
            "check_timeouts": stats.timeouts,
            "in_flight": self.scheduler.in_flight(),
            "check_durations": self.scheduler.durations(),
            "checks_by_service": self.scheduler.checks_by_service(),
            "rows_written": wstats.rows_written,
            "write_errors": wstats.write_errors,
            "insert_descriptor_waits": wstats.descriptor_waits,
            "queue_rows": self.writer.pending_rows(),
            "spool_bytes": self.writer.spool.wal.size,
            "spool_batches": self.writer.inserter.open_batches,
            "spool_dropped": wstats.rows_dropped,
            "spool_quarantined_rows": wstats.rows_quarantined,
            "spool_damaged_bytes": self.writer.spool.wal.damaged_bytes,
            "spool_damage_found": self.writer.spool.wal.damage_found,
            "spool_quarantine_removed": self.writer.spool.wal.quarantine.removed_files,
            "inserts_stalled": self.writer.inserter.stalled or self.writer.inserter.hung,
            "insert_call_seconds": self.writer.inserter.call_seconds,
            "insert_hung": self.writer.inserter.hung,
            "spool_error": self.writer.spool_problem(),
            "rows_set_aside": wstats.rows_set_aside,
            "rejected_batches": self.writer.rejected_batches(),
            "push_refusals": self.push_refusals(),
            "push_rejections": self.door.rejected,
            "push_abandoned": wstats.pushes_abandoned,
            "connections_evicted": self.door.evicted,
            "connections_turned_away": self.door.turned_away,
            "reads_refused": self.door.reads_refused,
            "requests_held": self.held(),
            "ingest_jobs": self.ingest.jobs,
            "ingest_worker_exits": self.ingest.worker_exits,
            "ingest_start_failures": self.ingest.start_failures,
            "alerts_firing": self.alerts.firing_count(),
            "notifications": self.dispatcher.stats(),
            "alert_delivery": [
                (a["id"], d["channel"], d["state"])
                for a in self.alerts.alerts()
                for d in a["delivery"]
            ],
        }

    def service_states(self) -> list[ServiceState]:
        """Every configured service's last result since start (or restored status), from memory."""
        out = []
        for service in self.services():
            latest = self.latest.get(service.id)
            restored = self.recorder.last_status.get(service.id)
            code = latest.status_code if latest else int(restored if restored is not None
                                                          else Status.UNKNOWN)  # fmt: skip
            out.append(ServiceState(service.id, service.stack, service.type, code,
                                    latest is not None or restored is not None,
                                    latest.response_time_ms if latest else None,
                                    latest.at if latest else None))  # fmt: skip
        return out

    def _say_hung(self) -> None:
        """An insert hung (:data:`server.inserter.HUNG`): one ERROR when it is first seen,
        one line when it comes back; the insert thread itself cannot say it."""
        inserter = self.writer.inserter
        if inserter.hung and not self._said_hung:
            self._said_hung = True
            log.error("an insert has been in ClickHouse for %.0f s and not come back: the "
                      "spool keeps what waits (%d rows), pushes are refused once it is near "
                      "full; restart the daemon (SIGTERM) to go on",
                      inserter.call_seconds, inserter.pending_rows)  # fmt: skip
        elif self._said_hung and not inserter.hung:
            self._said_hung = False
            log.warning("the insert that hung came back; inserts go on")

    def record(self) -> None:
        """Write the daemon's own ``service_status`` row (every ``SELF_INTERVAL``)."""
        stats, wstats = self.scheduler.stats, self.writer.stats
        p50, p99 = stats.lag_percentile(0.5), stats.lag_percentile(0.99)
        metrics = [
            Metric("scheduler_lag_p50_ms", p50, "ms"),
            Metric("scheduler_lag_p99_ms", p99, "ms"),
            Metric("checks_in_flight", self.scheduler.in_flight(), "count"),
            Metric("write_queue_rows", self.writer.pending_rows(), "rows"),
            Metric("spool_bytes", self.writer.spool.wal.size, "bytes"),
            Metric("spool_dropped_rows", wstats.rows_dropped, "rows"),
            Metric("spool_quarantined_rows", wstats.rows_quarantined, "rows"),
            Metric("spool_damaged_bytes", self.writer.spool.wal.damaged_bytes, "bytes"),
            Metric("spool_damage_found", self.writer.spool.wal.damage_found, "count"),
            Metric("rows_set_aside", wstats.rows_set_aside, "rows"),
            Metric("push_refusals", self.push_refusals(), "count"),
            Metric("requests_held", self.held(), "count"),
            Metric("ingest_worker_exits", self.ingest.worker_exits, "count"),
            Metric("ingest_start_failures", self.ingest.start_failures, "count"),
            Metric("write_latency_ms", round(wstats.last_write_ms, 2), "ms"),
            Metric("write_errors", wstats.write_errors, "count"),
            Metric("rows_written", wstats.rows_written, "rows"),
            Metric("checks_total", stats.checks, "count"),
            Metric("check_timeouts", stats.timeouts, "count"),
        ]
        status, message = Status.OK, f"{stats.checks} checks, lag p99 {p99:.0f} ms"
        if not self.writer.reachable:
            status = Status.DEGRADED
            message = (
                f"ClickHouse not taking writes: {self.writer.pending_rows()} rows "
                f"({self.writer.spool.wal.size} bytes) wait in the spool"
            )
        elif self.writer.inserter.hung:
            status = Status.DEGRADED
            message = (
                f"an insert has been in ClickHouse for {self.writer.inserter.call_seconds:.0f} s "
                "and not come back (a wedged engine call); what waits stays in the spool: "
                "restart the daemon (SIGTERM) to go on"
            )
        elif wstats.rows_set_aside:
            status = Status.DEGRADED
            message = (
                f"{wstats.rows_set_aside} rows refused by ClickHouse are set aside "
                "(lightbulb spool list)"
            )
        elif wstats.rows_quarantined:
            status = Status.DEGRADED
            message = (
                f"{wstats.rows_quarantined} waiting rows could not be decoded from the spool; "
                "their bytes are set aside in quarantine/ (lightbulb spool list)"
            )
        elif self.writer.spool.wal.damage_found:
            status = Status.DEGRADED
            message = (
                f"the spool's log was found damaged at start ({self.writer.spool.wal.damage_found}"
                " places, set aside in quarantine/: see the daemon's log, lightbulb spool list)"
            )
        self._say_hung()
        cpu, memory, rss = own_usage()
        metrics.append(Metric("rss_bytes", rss, "bytes"))
        result = CheckResult(status, message, {"pid": os.getpid()}, cpu_usage=cpu,
                             memory_usage=memory, metrics=metrics)  # fmt: skip
        self.recorder.record(SelfService(), result, self.clock.now())


_OWN_PROCESS = psutil.Process()


def own_usage() -> tuple[float, float, int]:
    """The daemon's CPU percent since the last call, memory percent and RSS in bytes.

    The same measures ``python_process`` takes of a watched process, so the daemon's
    own row needs no second service watching it (the demo had two such tiles).
    """
    with _OWN_PROCESS.oneshot():
        cpu = _OWN_PROCESS.cpu_percent(None)
        rss = int(_OWN_PROCESS.memory_info().rss)
    return cpu, round(rss / psutil.virtual_memory().total * 100, 3), rss
