"""``GET /metrics``: Prometheus exposition, so Prometheus/Grafana users can scrape us.

Inside the daemon every figure comes from memory: the per-service gauges from
the last result the daemon recorded, and its own counters (check durations,
scheduler lag, writes, spool, alerts, notification delivery). Nothing here waits on ClickHouse, so
an outage shows up *in* the figures (``lightbulb_storage_reachable 0``, the
spool growing) instead of as a failed scrape. A standalone dashboard has no
such memory and reads the current status from storage; if that query fails it
still answers, with ``lightbulb_storage_query_ok 0`` and no per-service gauges.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.core.status import is_up
from server.storage import StorageError
from server.web.context import ServiceState, WebContext
from server.web.queries import is_stale

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class LightbulbCollector:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        labels = ["service", "stack", "type"]
        status = GaugeMetricFamily(
            "lightbulb_service_status",
            "Current status code: 0 OK, 1 DEGRADED, 2 FAILED, 3 STARTING, 4 STOPPED, 5 UNKNOWN",
            labels=labels,
        )
        up = GaugeMetricFamily("lightbulb_service_up", "1 when OK or DEGRADED", labels=labels)
        response = GaugeMetricFamily(
            "lightbulb_service_response_time_ms", "Response time of the last check", labels=labels
        )
        last = GaugeMetricFamily(
            "lightbulb_service_last_check_timestamp_seconds",
            "Time of the last check",
            labels=labels,
        )
        stale = GaugeMetricFamily(
            "lightbulb_service_stale",
            "1 when the newest result is older than two intervals (its status is not current)",
            labels=labels,
        )
        now = self.ctx.clock.now()
        config = self.ctx.config
        intervals = {s.id: s.interval.total_seconds() for s in config.services}
        # from memory in the daemon; standalone, rows reach storage after both intervals
        sched = config.scheduler
        write_delay = (sched.flush_interval + sched.insert_interval).total_seconds()
        states = self._states()
        for view in states or []:
            values = [view.id, view.stack, view.type]
            status.add_metric(values, view.status_code)
            up.add_metric(values, 1.0 if view.checked and is_up(view.status_code) else 0.0)
            if view.response_time_ms is not None:
                response.add_metric(values, view.response_time_ms)
            if view.last_check is not None:
                last.add_metric(values, view.last_check.timestamp())
            old = is_stale(view.last_check, intervals.get(view.id, 30.0), now, write_delay)
            stale.add_metric(values, 1.0 if old else 0.0)
        yield from (status, up, response, last, stale)
        if self.ctx.daemon is not None:
            yield from self._daemon()
        else:
            yield GaugeMetricFamily(
                "lightbulb_storage_query_ok",
                "1 when the current status could be read from ClickHouse",
                value=0.0 if states is None else 1.0,
            )

    def _states(self) -> list[ServiceState] | None:
        """From the daemon's memory, or (standalone) from storage; None if that failed."""
        if self.ctx.daemon is not None:
            return self.ctx.daemon.service_states()
        try:
            views = self.ctx.reader.services(self.ctx.clock.now(), history=False)
        except StorageError:
            return None
        return [ServiceState(v.id, v.stack, v.type, v.status_code, v.checked,
                             v.response_time_ms, v.last_check) for v in views]  # fmt: skip

    def _daemon(self) -> Iterator[Metric]:
        assert self.ctx.daemon is not None
        h = self.ctx.daemon.health()
        durations = GaugeMetricFamily(
            "lightbulb_check_duration_seconds", "Duration of the last check", labels=["service"]
        )
        for service, seconds in sorted(h["check_durations"].items()):
            durations.add_metric([service], seconds)
        yield durations
        counts = CounterMetricFamily(
            "lightbulb_service_checks", "Results recorded per service since start",
            labels=["service"],
        )  # fmt: skip
        for service, count in sorted(h["checks_by_service"].items()):
            counts.add_metric([service], count)
        yield counts
        lag = GaugeMetricFamily(
            "lightbulb_scheduler_lag_seconds",
            "Actual minus planned check start, over the last 20,000 checks",
            labels=["quantile"],
        )
        lag.add_metric(["0.5"], h["lag_p50_ms"] / 1000)
        lag.add_metric(["0.99"], h["lag_p99_ms"] / 1000)
        yield lag
        counters = {
            "lightbulb_checks": ("Checks run", h["checks_total"]),
            "lightbulb_check_timeouts": ("Checks that ran past their timeout", h["check_timeouts"]),
            "lightbulb_rows_written": ("Rows written to ClickHouse", h["rows_written"]),
            "lightbulb_write_errors": ("Failed write attempts", h["write_errors"]),
            "lightbulb_insert_descriptor_waits": (
                "Insert rounds not begun because the daemon had fewer than 64 file "
                "descriptors to spare (an EMFILE inside the engine can wedge it)",
                h.get("insert_descriptor_waits", 0),
            ),
            "lightbulb_spool_dropped_rows": (
                "Rows lost: the spool's disk and the memory bound were both full",
                h["spool_dropped"],
            ),
            "lightbulb_spool_damaged_bytes": (
                "Bytes of the spool's log found damaged at start (a frame failing its checksum "
                "with valid frames after it, the bad end of a segment that is not the newest, "
                "an undecodable frame) and set aside in quarantine/",
                h.get("spool_damaged_bytes", 0),
            ),
            "lightbulb_spool_damage_found": (
                "Places the spool's log was found damaged at start: each run of bad bytes, "
                "and each run of segments emptied or missing although later ones exist",
                h.get("spool_damage_found", 0),
            ),
            "lightbulb_spool_quarantined_rows": (
                "Rows read back from the spool undecodable (their bytes set aside in "
                "quarantine/, listed by lightbulb spool list); the rest of their batch stored",
                h.get("spool_quarantined_rows", 0),
            ),
            "lightbulb_spool_quarantine_removed_files": (
                "Files removed from the spool's quarantine/, oldest first, to keep it under "
                "a quarter of scheduler.spool_max_bytes",
                h.get("spool_quarantine_removed", 0),
            ),
            "lightbulb_rows_set_aside": (
                "Rows ClickHouse refused for their content, kept in the spool's rejected/",
                h["rows_set_aside"],
            ),
            "lightbulb_push_refusals": (
                "Pushed log requests answered 429/503 (writer behind, spool full, workers "
                "busy, logs.max_in_flight requests held, or stopping); nothing of them kept",
                h["push_refusals"],
            ),
            "lightbulb_push_rejections": (
                "Pushes answered from their headers or deadline at the door: no valid token "
                "(401), Content-Length past logs.max_body (413), body past logs.body_timeout "
                "(408); none of them read or kept",
                h.get("push_rejections", 0),
            ),
            "lightbulb_connections_evicted": (
                "Idle connections closed to make room for a new one at the connection limit "
                "(500), the client address holding the most first",
                h.get("connections_evicted", 0),
            ),
            "lightbulb_connections_turned_away": (
                "New connections closed as accepted: at the connection limit with none idle",
                h.get("connections_turned_away", 0),
            ),
            "lightbulb_reads_refused": (
                "Pages and API reads answered 503 at the door: their client address held "
                "16 already, served or waiting (cheap endpoints and pushes are never "
                "counted; other reads wait their turn)",
                h.get("reads_refused", 0),
            ),
            "lightbulb_push_abandoned": (
                "Pushes whose client closed its connection before their records were stored "
                "(it timed out, say); nothing of them stored, their client never got a 200",
                h.get("push_abandoned", 0),
            ),
            "lightbulb_ingest_worker_jobs": (
                "Pushed requests prepared by an ingest worker (the rest in the daemon)",
                h.get("ingest_jobs", 0),
            ),
            "lightbulb_ingest_worker_exits": (
                "Ingest workers that died or hung and were replaced",
                h.get("ingest_worker_exits", 0),
            ),
            "lightbulb_ingest_worker_start_failures": (
                "Attempts to start an ingest worker that failed (tried again)",
                h.get("ingest_start_failures", 0),
            ),
        }
        for name, (text, value) in counters.items():
            yield CounterMetricFamily(name, text, value=value)
        gauges = {
            "lightbulb_checks_in_flight": ("Checks running now", h["in_flight"]),
            "lightbulb_requests_held": (
                "Requests the web server holds now (received, waiting, being served; this one too)",
                h.get("requests_held", 0),
            ),
            "lightbulb_write_queue_rows": ("Rows waiting for the next write", h["queue_rows"]),
            "lightbulb_spool_bytes": ("Bytes waiting in the spool", h["spool_bytes"]),
            "lightbulb_spool_batches": ("Batches waiting in the spool", h["spool_batches"]),
            "lightbulb_spool_rejected_batches": (
                "Set-aside batches in rejected/ (lightbulb spool list)",
                h["rejected_batches"],
            ),
            "lightbulb_alerts_firing": ("Alerts firing now", h["alerts_firing"]),
            "lightbulb_storage_reachable": (
                "1 when ClickHouse answers, even if only to refuse (an old version, a missing "
                "right: see lightbulb_storage_writable)",
                h["storage_reachable"],
            ),
            "lightbulb_storage_writable": (
                "1 when storage is prepared and the last write went through",
                h.get("storage_writable", h["storage_reachable"]),
            ),
            "lightbulb_spool_writable": (
                "1 when the spool takes writes (pushes are acknowledged); 0 when its filesystem "
                "is full (bytes or inodes): pushes get 503, check results wait in memory",
                not h.get("spool_error"),
            ),
            "lightbulb_inserts_stalled": (
                "1 when inserts wait because the spool cannot take a batch's mark (disk full), "
                "the daemon is short of file descriptors, or an insert hung in ClickHouse",
                h.get("inserts_stalled", False),
            ),
            "lightbulb_insert_call_seconds": (
                "seconds the insert under way has been in ClickHouse (0: none is); past 120 "
                "it is called hung (lightbulb_inserts_stalled 1, one ERROR)",
                h.get("insert_call_seconds", 0.0),
            ),
        }
        for name, (text, value) in gauges.items():
            yield GaugeMetricFamily(name, text, value=float(value))
        yield from _notifications(h)


def _notifications(h: dict[str, Any]) -> Iterator[Metric]:
    """Delivery per channel, and the state of each live alert's news at each channel."""
    channel = ["channel"]
    per_channel: dict[str, Any] = {
        "delivered": CounterMetricFamily(
            "lightbulb_notifications_delivered", "Notices delivered", labels=channel
        ),
        "failed": CounterMetricFamily(
            "lightbulb_notifications_failed",
            "Notices given up (permanent error or past alerting.delivery_deadline)",
            labels=channel,
        ),
        "dropped": CounterMetricFamily(
            "lightbulb_notifications_dropped",
            "Alert news not sent: a resolve of a firing the channel never got",
            labels=channel,
        ),
        "expired": CounterMetricFamily(
            "lightbulb_notifications_expired",
            "Notices whose delivery deadline passed while the daemon was stopped (not sent)",
            labels=channel,
        ),
        "attempts": CounterMetricFamily(
            "lightbulb_notification_attempts", "Send attempts", labels=channel
        ),
        "queued": GaugeMetricFamily(
            "lightbulb_notifications_queued", "Notices waiting for their first attempt",
            labels=channel,
        ),
        "sending": GaugeMetricFamily(
            "lightbulb_notifications_sending", "Notices with an attempt in flight now",
            labels=channel,
        ),
        "retrying": GaugeMetricFamily(
            "lightbulb_notifications_retrying", "Notices waiting to be tried again",
            labels=channel,
        ),
        "oldest_pending_seconds": GaugeMetricFamily(
            "lightbulb_notification_oldest_pending_seconds",
            "Age of the oldest notice not yet delivered", labels=channel,
        ),
    }  # fmt: skip
    for name, stats in h.get("notifications", {}).items():
        for key, family in per_channel.items():
            family.add_metric([name], float(stats[key]))
    yield from per_channel.values()
    delivery = GaugeMetricFamily(
        "lightbulb_alert_delivery",
        "1 for the state of each live alert's current news at each channel",
        labels=["alert", "channel", "state"],
    )
    for alert_id, name, state in h.get("alert_delivery", []):
        delivery.add_metric([alert_id, name, state], 1.0)
    yield delivery


def exposition(ctx: WebContext) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LightbulbCollector(ctx))
    return generate_latest(registry)
