"""The daemon's periodic work as APScheduler jobs (the checks have their own scheduler).

- ``alert-tick`` (interval, 1 s): absent results, pending timers, repeats, held news,
  and the alert log's owed rows to disk;
- ``self`` (interval, 15 s): the daemon's own row in ``service_status``;
- ``baselines`` (interval, 1 min): recompute the anomaly baselines when older
  than ``baselines.every``;
- ``report`` (cron at ``report.time`` in ``report.timezone``, and once at start
  for a day missed while stopped): yesterday's report. The rule (:func:`report_day`):
  once ``report.time`` has passed in the report's zone, the report covers the
  previous calendar day *in that zone*, midnight to midnight (23 or 25 hours on
  a DST change day), which has always ended by then. Zone and day are never
  mixed with UTC or the machine's zone. A day counts as done only
  once its report is stored and its notices are in the durable outbox; a build
  or store that fails is retried (``report-retry``, backoff to an hour) until it
  succeeds.

Each job has ``max_instances=1`` and ``coalesce``: a slow run is never doubled up.
Shutdown never waits inside APScheduler (``shutdown(wait=True)`` holds the job
store lock while it waits for running jobs, and a report job scheduling its own
retry needs that lock: a deadlock on SIGTERM). It marks the jobs stopping, so no
job schedules another, stops APScheduler without waiting, then waits for the
jobs in flight itself, at most ``wait_seconds``.
The job logic (:class:`ReportJob`, :class:`BaselineJob`) takes the injected clock,
so tests run it directly.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from server.alerting.log import AlertLog
from server.analytics.baselines import Baselines
from server.analytics.report import build as build_report
from server.analytics.report import publish
from server.config.models import Config
from server.core.backoff import ceiling
from server.core.clock import Clock
from server.core.repeats import Repeats
from server.notify.dispatcher import Dispatcher
from server.storage import Storage, StorageError

log = logging.getLogger("lightbulb.periodic")
ALERT_TICK = 1.0  # seconds
SELF_INTERVAL = 15.0  # seconds
BASELINE_CHECK = 60.0  # seconds between "are the baselines stale?"
REPORT_RETRY = (60.0, 3600.0)  # first and longest delay before building a failed report again
JOBS_GRACE = 2.0  # seconds shutdown waits for jobs in flight (the daemon's stop budget is 10 s)


def report_zone(name: str) -> tzinfo:
    """``report.timezone``; when empty the machine's zone (``TZ``, else
    ``/etc/localtime``), and UTC when neither can be read."""
    if name:
        return ZoneInfo(name)
    try:
        if os.environ.get("TZ"):
            return ZoneInfo(os.environ["TZ"].lstrip(":"))
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return UTC


def report_day(now: datetime, zone: tzinfo, at: str) -> date | None:
    """The day whose report is due at ``now`` (aware), or None before ``at`` (HH:MM).

    From ``at`` on (local time in ``zone``), the previous calendar day in ``zone``:
    it ended at local midnight, so it is always complete. A local ``at`` that the
    zone skips (spring forward) is reached at the first minute after it.
    """
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in at.split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return None
    return local.date() - timedelta(days=1)


class Reachable(Protocol):
    """Whether the writer can write now (``Writer.reachable``)."""

    @property
    def reachable(self) -> bool: ...


class BaselineJob:
    def __init__(self, baselines: Baselines, storage: Storage, writer: Reachable, clock: Clock):
        self.baselines, self.storage, self.writer, self.clock = baselines, storage, writer, clock

    def run(self) -> None:
        """Recompute when stale (daily, and at start when older); one SQL aggregation."""
        if not self.writer.reachable or not self.baselines.stale(self.clock.now()):
            return
        started = self.clock.monotonic()
        try:
            count = self.baselines.compute(self.storage, self.clock.now())
        except StorageError as exc:
            log.warning("anomaly baselines not computed: %s", exc)
            self.baselines.computed_at = self.clock.now()  # try again after `every`
            return
        took = self.clock.monotonic() - started
        log.info("anomaly baselines computed: %d in %.1f s", count, took)


class ReportJob:
    """Yesterday's report once ``report.time`` has passed, stored and queued exactly once."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        writer: Any,  # server.writer.Writer: add_durable, reachable
        *,
        dispatcher: Dispatcher | None,
        alert_log: AlertLog,
        clock: Clock,
    ) -> None:
        self.config, self.storage, self.writer = config, storage, writer
        self.dispatcher, self.alert_log, self.clock = dispatcher, alert_log, clock
        self.done: date | None = None  # the newest day with a stored and queued report
        self.failures = 0
        self.waiting = False  # skipped while storage takes no writes (said once)

    def zone(self) -> tzinfo:
        return report_zone(self.config.report.timezone)

    def due(self, now: datetime) -> date | None:
        """The day whose report is due at ``now`` (see :func:`report_day`), or None."""
        settings = self.config.report
        if not settings.enabled:
            return None
        day = report_day(now, self.zone(), settings.time)
        if day is None:
            return None
        return None if self.done is not None and self.done >= day else day

    def run(self) -> bool:
        """Build, store and queue the due report; False when it failed (retry later)."""
        day = self.due(self.clock.now())
        if day is None:
            return True
        if not self.writer.reachable:  # nothing to read (a refused server): retried later
            if not self.waiting:
                log.info("daily report for %s waits until storage takes writes", day)
            self.waiting = True
            return False
        self.waiting = False
        try:
            report = build_report(self.storage, self.config, day, self.clock.now(), self.zone())
            if not report.services and not report.incidents:
                log.info("no checks on %s (a fresh install?): no daily report", day)
            else:
                queued = publish(report, self.writer, self.dispatcher, self.config,
                                 self.alert_log)  # fmt: skip
                log.info("daily report for %s: %d incidents, %d notices queued",
                         day, len(report.incidents), queued)  # fmt: skip
        except Exception as exc:  # StorageError mostly; any failure is retried the same way
            self.failures += 1
            log.warning("daily report for %s not done (attempt %d), will retry: %s",
                        day, self.failures, exc)  # fmt: skip
            return False
        self.done, self.failures = day, 0
        return True

    def retry_delay(self) -> float:
        first, longest = REPORT_RETRY
        return ceiling(first, longest, self.failures)


class PeriodicJobs:
    def __init__(
        self,
        clock: Clock,
        *,
        tick: Callable[[], None],
        record_self: Callable[[], None],
        baselines: BaselineJob,
        report: ReportJob,
    ) -> None:
        self.clock = clock
        self.tick, self.record_self = tick, record_self
        self.baselines, self.report = baselines, report
        self._aps = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._running = 0  # jobs in flight

    def start(self) -> None:
        now = datetime.now(UTC)
        aps = self._aps
        aps.add_job(self._guard(self.tick), IntervalTrigger(seconds=ALERT_TICK), id="alert-tick")
        aps.add_job(self._guard(self.record_self), IntervalTrigger(seconds=SELF_INTERVAL),
                    id="self", next_run_time=now)  # fmt: skip
        aps.add_job(self._guard(self.baselines.run),
                    IntervalTrigger(seconds=BASELINE_CHECK), id="baselines",
                    next_run_time=now)  # fmt: skip
        aps.add_job(self._guard(self._report), DateTrigger(now), id="report-catch-up")
        self._schedule_report()
        aps.start()

    def _schedule_report(self) -> None:
        settings = self.report.config.report
        minute = int(settings.time.split(":")[1])
        # hourly at the minute, not once at the hour: a report.time the zone skips on
        # its spring-forward day is then caught an hour later; ``due`` keeps it once
        trigger = CronTrigger(minute=minute, timezone=self.report.zone())
        self._aps.add_job(self._guard(self._report), trigger, id="report",
                          replace_existing=True)  # fmt: skip

    def reconfigure(self, config: Config) -> None:
        """After a reload: the report's time and zone may have changed."""
        self.report.config = config
        if self._aps.running:
            self._schedule_report()

    def _report(self) -> None:
        if self.report.run() or self._stopping.is_set():
            return  # stopping: the retry happens at the next start (its catch-up run)
        when = datetime.now(UTC) + timedelta(seconds=self.report.retry_delay())
        self._aps.add_job(self._guard(self._report), DateTrigger(when),
                          id="report-retry", replace_existing=True)  # fmt: skip

    def _guard(self, job: Callable[[], None]) -> Callable[[], None]:
        """``job`` run safely: a failure is logged once per episode (the repeats rule: a
        job failing every 15 s for one cause is one line, its end another). A job that
        queries the embedded storage while file descriptors are short fails with its
        ``DescriptorsShort`` (said once like any failure); a remote ClickHouse runs it."""
        name = getattr(job, "__name__", "job")
        repeats = Repeats(every=math.inf, clock=self.clock)

        def run() -> None:
            with self._idle:
                self._running += 1
            try:
                if self._stopping.is_set():
                    return
                job()
                failures = repeats.ok()
                if failures is not None:
                    log.info("periodic job %s runs again (%d runs failed)", name, failures)
            except Exception:  # a failing job must never stop the daemon or its next run
                if repeats.due() is not None:
                    log.exception("periodic job %s failed (said once until it runs again)",
                                  name)  # fmt: skip
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        run.__name__ = getattr(job, "__name__", "job")
        return run

    def shutdown(self, wait_seconds: float = JOBS_GRACE) -> bool:
        """Stop the jobs: none starts or schedules another; wait at most ``wait_seconds``
        for those in flight. Returns whether all had ended (a report build still
        running is left to fail against the closed storage; its day is built at the
        next start)."""
        self._stopping.set()
        if self._aps.running:
            # APScheduler 3 marks itself stopped before taking its job-store lock, so a
            # run-once job (report-catch-up) its loop is just finishing is "not found"
            # and the loop thread dies with a traceback (a stop right after start). Pause
            # first and let that pass (the lock) end, then stop.
            self._aps.pause()
            with self._aps._jobstores_lock:
                pass
            self._aps.shutdown(wait=False)
        end = time.monotonic() + wait_seconds
        with self._idle:
            while self._running and time.monotonic() < end:
                self._idle.wait(end - time.monotonic())
            if self._running:
                log.warning("stopping: %d periodic job(s) still running", self._running)
            return self._running == 0
