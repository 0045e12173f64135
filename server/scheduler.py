"""Poll every service on its own interval with APScheduler.

One job per service, ``max_instances=1`` so a slow check never overlaps itself,
first runs spread over the interval (by a hash of the id, so restarts keep the
spread), a bounded worker pool. Checkers honour their timeout in their own I/O;
a watchdog enforces it anyway: a check still running past its timeout is
recorded UNKNOWN on time and its late result is dropped, so one hung checker
costs one worker thread and never delays anyone else's results.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

import checkers
from checkers.base import CheckContext, Checker, CheckResult, Status
from server.config.models import ServiceConfig
from server.core.clock import Clock
from server.recorder import Recorder
from server.runner import run_check

log = logging.getLogger("lightbulb.scheduler")
WATCHDOG_PERIOD = 0.2
TIMEOUT_GRACE = 0.5  # seconds past the timeout before the watchdog steps in
ADD_LEAD_BASE = 0.1  # seconds between planning first runs and the earliest of them
ADD_LEAD_PER_JOB = 0.0003


@dataclass
class Entry:
    service: ServiceConfig
    checker: Checker[Any]
    first_run: datetime  # the first planned run; later ones follow every interval
    started: float | None = None  # monotonic start of the check in flight
    run_token: int = 0
    timed_out_token: int = -1
    last_duration: float | None = None  # seconds the last completed check took


@dataclass
class SchedulerStats:
    checks: int = 0
    timeouts: int = 0
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))

    def lag_percentile(self, q: float) -> float:
        data = sorted(self.lags_ms)
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]


def spread_offset(service_id: str, interval: float) -> float:
    """Where in its first interval a service starts: stable per id, uniform over ids."""
    return (zlib.crc32(service_id.encode()) % 10_000) / 10_000 * interval


class CheckScheduler:
    def __init__(
        self,
        recorder: Recorder,
        clock: Clock,
        *,
        max_workers: int,
        build: Callable[[str, dict[str, Any]], Checker[Any]] = checkers.build_checker,
    ) -> None:
        self.recorder = recorder
        self.build = build
        self.clock = clock
        self.stats = SchedulerStats()
        self.entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._aps.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self._watchdog = threading.Thread(
            target=self._watch, name="lightbulb-watchdog", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._aps.start()
        self._watchdog.start()

    @property
    def running(self) -> bool:
        return bool(self._aps.running) and not self._stop.is_set()

    def durations(self) -> dict[str, float]:
        """Seconds the last completed check of each service took."""
        return {
            sid: e.last_duration for sid, e in self.entries.items() if e.last_duration is not None
        }

    def in_flight(self) -> int:
        return sum(1 for e in self.entries.values() if e.started is not None)

    def shutdown(self, wait_seconds: float) -> None:
        """Stop scheduling; give checks in flight up to ``wait_seconds`` to finish."""
        self._aps.pause()
        deadline = self.clock.monotonic() + wait_seconds
        while self.in_flight() and self.clock.monotonic() < deadline:
            self._stop.wait(0.05)
        self._stop.set()
        self._aps.shutdown(wait=False)
        for entry in self.entries.values():
            entry.checker.close()

    # -- services ----------------------------------------------------------------------
    def sync(self, services: list[ServiceConfig]) -> dict[str, list[str]]:
        """Make the jobs match ``services``: add new, drop removed, rebuild changed ones."""
        wanted = {s.id: s for s in services if s.enabled}
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        with self._lock:
            for sid in list(self.entries):
                if sid not in wanted:
                    self._remove(sid)
                    changes["removed"].append(sid)
                elif wanted[sid] != self.entries[sid].service:
                    self._remove(sid)
                    changes["changed"].append(sid)
            new = [s for sid, s in wanted.items() if sid not in self.entries]
            # Build every checker first, then plan first runs from one instant far enough
            # ahead to register every job (~0.1 ms each), so none starts out already late.
            built = [(service, self.build(service.type, service.block())) for service in new]
            lead = ADD_LEAD_BASE + ADD_LEAD_PER_JOB * len(built)
            base = self.clock.now() + timedelta(seconds=lead)
            for service, checker in built:
                self._add(service, checker, base)
                if service.id not in changes["changed"]:
                    changes["added"].append(service.id)
        return changes

    def _add(self, service: ServiceConfig, checker: Checker[Any], base: datetime) -> None:
        interval = service.interval.total_seconds()
        first = base + timedelta(seconds=spread_offset(service.id, interval))
        self.entries[service.id] = Entry(service, checker, first)
        self._aps.add_job(
            self._run,
            IntervalTrigger(seconds=interval, start_date=first, timezone="UTC"),
            args=[service.id],
            id=service.id,
            name=service.id,
            next_run_time=first,
        )

    def _remove(self, service_id: str) -> None:
        entry = self.entries.pop(service_id)
        try:
            self._aps.remove_job(service_id)
        except Exception:
            log.debug("job %s already removed", service_id)
        entry.checker.close()

    # -- running -----------------------------------------------------------------------
    def _run(self, service_id: str) -> None:
        entry = self.entries.get(service_id)
        if entry is None or self._stop.is_set():
            return
        now = self.clock.now()
        self._note_lag(entry, now)
        entry.run_token += 1
        token = entry.run_token
        entry.started = self.clock.monotonic()
        timeout = entry.service.timeout.total_seconds()
        try:
            result = run_check(entry.checker, CheckContext(service_id, now, timeout))
        finally:
            entry.last_duration = self.clock.monotonic() - entry.started
            entry.started = None
        if entry.timed_out_token == token:
            log.warning("%s: late result after timeout dropped: %s", service_id, result.message)
            return
        if self.entries.get(service_id) is entry:
            self._record(entry, result, now)

    def _note_lag(self, entry: Entry, now: datetime) -> None:
        interval = entry.service.interval.total_seconds()
        since_first = (now - entry.first_run).total_seconds()
        planned = entry.first_run + timedelta(
            seconds=max(0, int(since_first // interval)) * interval
        )
        self.stats.lags_ms.append(max(0.0, (now - planned).total_seconds() * 1000))

    def _record(self, entry: Entry, result: CheckResult, at: datetime) -> None:
        self.stats.checks += 1
        try:
            self.recorder.record(entry.service, result, at)
        except Exception:
            log.exception("recording a result of %s failed", entry.service.id)

    def _watch(self) -> None:
        while not self._stop.wait(WATCHDOG_PERIOD):
            now_mono = self.clock.monotonic()
            for sid, entry in list(self.entries.items()):
                started, token = entry.started, entry.run_token
                limit = entry.service.timeout.total_seconds()
                if started is None or entry.timed_out_token == token:
                    continue
                if now_mono - started > limit + TIMEOUT_GRACE:
                    entry.timed_out_token = token
                    self.stats.timeouts += 1
                    message = f"check timed out after {limit:g}s (checker did not return)"
                    self._record(entry, CheckResult(Status.UNKNOWN, message), self.clock.now())
                    log.warning("%s: %s", sid, message)

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        entry = self.entries.get(event.job_id)
        if entry is None or entry.started is None:
            return
        hung = self.clock.monotonic() - entry.started
        message = f"previous check still running after {hung:.0f}s; this run was skipped"
        self._record(entry, CheckResult(Status.UNKNOWN, message), self.clock.now())
