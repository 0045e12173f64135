"""``lightbulb run``: wire config, storage, writer, recorder and scheduler together.

Signals: SIGTERM/SIGINT stop scheduling, let checks in flight finish (up to
their timeout, at most ``STOP_GRACE``), flush, and exit 0. SIGHUP reloads the
config: an invalid file (whatever it holds) is reported and the running config
kept; a valid one adds, removes and reschedules services without touching the
others. A reload that moves the dashboard to another address applies it with its
auth, or is refused whole if that address cannot be bound.

If the dashboard's port is taken at start, ``run`` exits at once (code 1) naming
the port and the key to change, before checking anything.

What the daemon reports of itself (``/metrics``, ``/readyz`` and its own
``service_status`` row) is :mod:`server.self_monitor`'s; the handlers, log setup
and GC freeze it shares with other commands are :mod:`server.process`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from checkers import temporal_budget
from checkers.base import Status
from server.alerting.engine import AlertEngine
from server.alerting.log import AlertLog
from server.analytics.baselines import Baselines, LearnedDegraded
from server.analytics.burn import BurnCounts
from server.analytics.flap_replay import replay
from server.analytics.report import latest_day
from server.analytics.rule_coverage import changes, coverage, record
from server.config import Config, ConfigError, missing_sections
from server.config import warnings as config_warnings
from server.config_changes import describe
from server.core import descriptors, redact
from server.core.clock import Clock, SystemClock
from server.core.redact import RedactingSink, redact_value
from server.latest import LatestResults
from server.logs.pool_stats import PoolStats
from server.notify.dispatcher import Dispatcher
from server.periodic import BaselineJob, PeriodicJobs, ReportJob
from server.process import freeze_startup_objects, install_signals, within
from server.recorder import Recorder
from server.scheduler import CheckScheduler
from server.schema import Target, apply_schema
from server.self_monitor import SelfMonitor
from server.spool import Spool
from server.storage import Storage, StorageError, open_storage
from server.storage.library_pages import release_library_pages
from server.sync import sync_config_tables
from server.tables import WRITTEN_TABLES
from server.validation import load_config
from server.web import WebContext
from server.web.host import BindError, DashboardHost
from server.writer import Writer

if TYPE_CHECKING:
    from server.logs.workers import IngestPool

log = logging.getLogger("lightbulb.daemon")
STARTUP_WAIT = 3.0  # s checks wait at start for a cluster's readiness (alert state restore)
STOP_GRACE = 6.0  # seconds for checks in flight; leaves time to notify and flush within 10 s
NOTIFY_GRACE = 2.0  # seconds for notifications still waiting (group_wait) at shutdown
# seconds for the last inserts; what ClickHouse has not taken by then is in the
# write-ahead log already and is inserted at the next start
WRITE_GRACE = 1.5
# seconds from SIGTERM for requests being served to be answered; one still waiting for
# an ingest worker then is answered 503 as the workers stop (ANSWER_GRACE to write it)
DRAIN_GRACE = 3.0
ANSWER_GRACE = 1.0
# seconds for the storage to close: milliseconds unless a call into the engine is stuck
# (a chDB query that met EMFILE never came back); then the process exits without it
CLOSE_GRACE = 1.0


class Daemon:
    def __init__(self, config_path: str, clock: Clock | None = None) -> None:
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.config: Config = load_config(config_path)
        # rule_coverage records this config's rules as in effect from now (_prepare_storage)
        self.started, self._first_config = self.clock.now(), self.config
        self.secrets = redact.hold()  # masked while this daemon lives, across reloads
        for warning in config_warnings(self.config):
            log.warning("%s", warning)  # "file:line key: warning: ..."
        temporal_budget.configure(self.config.temporal.max_visibility_rps)
        before, now = descriptors.raise_limit()  # before chDB and the web server open files
        if now > before:
            log.info("open-files limit raised from %d to %d", before, now)
        self.storage: Storage = open_storage(self.config.clickhouse)
        sched = self.config.scheduler
        self.writer = Writer(
            self.storage,
            Spool(sched.spool_dir, sched.spool_max_bytes),
            batch_rows=sched.batch_rows,
            flush_interval=sched.flush_interval.total_seconds(),
            insert_interval=sched.insert_interval.total_seconds(),
            before_first_write=self._prepare_storage,
            columns=WRITTEN_TABLES,
            max_queue_rows=sched.max_queue_rows,
            clock=self.clock,
        )
        # Secrets are masked at the choke points (server.core.redact): results before rows
        # and alerts see them, every row written, every notice queued (the dispatcher),
        # every log line.
        rows = RedactingSink(self.writer)
        self.alert_log = AlertLog(rows, self.storage, self.clock)
        self.dispatcher = Dispatcher(self.config, self.clock, self.alert_log)
        self.baselines = Baselines(self.config.baselines)
        self.alerts = AlertEngine(
            self.config, self.alert_log, self.dispatcher, self.clock, baselines=self.baselines,
            slo=BurnCounts(self.storage),  # slo_burn rules read checks per window from storage
        )  # fmt: skip
        learned = LearnedDegraded(self.baselines)
        self.latest = LatestResults(self.writer)  # /metrics reads it: no ClickHouse needed
        self.recorder = Recorder(
            self.latest, listener=self.alerts, adjust=learned.adjust, redact=redact_value,
        )  # fmt: skip
        self.report = ReportJob(
            self.config, self.storage, rows, dispatcher=self.dispatcher,
            alert_log=self.alert_log, clock=self.clock,
        )  # fmt: skip
        self.jobs = PeriodicJobs(
            self.clock, tick=self._tick_alerts, record_self=self._record_self,
            baselines=BaselineJob(self.baselines, self.storage, self.writer, self.clock),
            report=self.report,
        )  # fmt: skip
        # pushed logs are prepared in worker processes (started by the first push that
        # needs one): the daemon's Python is one core. The pool (and the decoders it
        # loads, ~3 MB) exists once the dashboard, which takes the pushes, is on.
        self.ingest_stats = PoolStats()
        self._ingest: IngestPool | None = None
        self.web = DashboardHost(self._web_context)
        self._checking = False  # set once checks run: alert state is live from then on
        # storage was unreachable when checks began: the alert state is restored (what
        # this run has not superseded) at the first tick once it answers, then cleared
        self._restore_due = False
        # flapping from before the engine recorded every service's (once a store): judged
        # at the first alert tick after readiness, off the writer's path (_replay_flaps)
        self._replay_due = True
        self.scheduler = CheckScheduler(self.recorder, self.clock, max_workers=sched.max_workers)
        self.monitor = SelfMonitor(
            scheduler=self.scheduler, writer=self.writer, alerts=self.alerts,
            dispatcher=self.dispatcher, latest=self.latest, recorder=self.recorder,
            clock=self.clock, services=lambda: self.config.services,
            door=self.web.door, held=self.web.held, ingest=self.ingest_stats,
        )  # fmt: skip
        self._stop = threading.Event()
        self._reload = threading.Event()

    # -- storage -----------------------------------------------------------------------
    def _prepare_storage(self) -> None:
        """Schema, config tables and the last known status of each service.

        Runs before the first write (and again if ClickHouse was down at start),
        so a daemon started during an outage checks and spools from the first second.
        The writer calls it until it succeeds once.
        """
        apply_schema(self.storage, Target.of(self.config.clickhouse))
        sync_config_tables(self.storage, self.config, self.clock.now())
        record(self.storage, self._first_config, self.started)
        rows = self.storage.query(
            f"SELECT service_id, argMaxMerge(last_status) AS status "
            f"FROM {self.storage.database}.service_status_summary GROUP BY service_id"
        )
        self.recorder.anchor({row["service_id"]: Status(row["status"]) for row in rows})
        self.baselines.load(self.storage)
        self.report.done = self.report.done or latest_day(self.storage)
        log.info("storage ready: %s", self.storage.describe())

    # -- lifecycle ---------------------------------------------------------------------
    def run(self) -> int:
        install_signals(self._stop, self._reload)
        try:
            self.web.open(self.config)  # a taken port stops us before anything runs
        except BindError as exc:
            log.error("not started: %s (in %s)", exc, self.config_path)
            self.storage.close()
            return 1
        log.info(
            "starting: %d services from %s, storage %s",
            sum(1 for s in self.config.services if s.enabled),
            self.config_path,
            self.storage.describe(),
        )
        # /healthz, /metrics and the dashboard answer from the first second, and checks
        # run, whatever ClickHouse does: readiness (schema, config tables, last status) is
        # the writer's to retry in the background. We wait for its first attempt only so
        # that a reachable server's alert state is restored before checks begin, and at
        # most STARTUP_WAIT for a cluster that accepts connections but does not answer.
        self.web.start()
        self.writer.start()
        if not self._first_readiness(None if self.storage.kind == "embedded" else STARTUP_WAIT):
            why = {"refused": "refused (as logged above)", "disk full": "out of disk space"}
            log.warning("storage %s; checking anyway and spooling results; alert state is "
                        "restored once it takes writes",
                        why.get(self.writer.inserter.state, "not reachable yet"))  # fmt: skip
            self._restore_due = True
        else:
            self._restore_due = not self._restore_alerts()
        self.dispatcher.start()
        self._checking = True
        self.scheduler.sync(list(self.config.services))
        freeze_startup_objects()
        # pages of pyarrow, pydantic-core, OpenSSL... that only start-up read (~28 MB)
        log.info(
            "start-up over: %.1f MB of library pages given back", release_library_pages() / 1024
        )
        self.scheduler.start()
        self.jobs.start()  # alert ticks, self-monitoring, baselines, reports (server/periodic.py)
        while not self._stop.is_set():  # the main thread only waits for signals
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            self._stop.wait(1.0)
        return self.shutdown()

    def _first_readiness(self, seconds: float | None) -> bool:
        """Wait for the writer's first attempt to prepare storage; True if it succeeded.

        ``seconds``: at most this long (None: until the attempt ends, success or not).
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        errors = self.writer.stats.write_errors
        self.writer.inserter.wake()
        # cut short by SIGTERM too: an engine call that never comes back (chDB meeting
        # EMFILE) must not hold the stop; shutdown's close waits for it, bounded
        while not self.writer.reachable and self.writer.stats.write_errors == errors:
            if self._stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.02)
        return self.writer.reachable

    def _restore_alerts(self) -> bool:
        """Read the alert state back; False (logged) if storage failed meanwhile.

        What the write-ahead log holds (a kill's outbox, acks and transitions; after a
        late start, this run's too) is inserted first, so the state read is complete.
        """
        try:
            self.writer.replay()
            self.alerts.restore()
        except StorageError as exc:
            log.warning("alert state not restored yet: %s", exc)
            return False
        return True

    def _tick_alerts(self) -> None:
        if self._restore_due and self.writer.reachable:
            self._restore_due = not self._restore_alerts()
        if self._replay_due and self.writer.reachable:
            self._replay_flaps()
        self.alerts.tick()

    def _replay_flaps(self) -> None:
        """The one-time flap replay (:func:`server.analytics.flap_replay.replay`), tried
        once a start, after storage readiness and never before a write: a store it fails on
        (a StorageError, e.g. out of memory on a big store) is logged once and left
        unmarked, so the next start tries again; checks and alerts go on meanwhile."""
        self._replay_due = False
        try:
            replay(self.storage, self._first_config, self.started, self.clock.now())
        except StorageError as exc:
            log.warning("flapping before this start not replayed (tried again at the next "
                        "start): %s", exc)  # fmt: skip

    def _record_self(self) -> None:
        self.monitor.record()

    def _web_context(self, config: Config) -> WebContext:
        return WebContext(
            config, self.storage, self.clock, self.alerts, self.monitor, sink=self.writer,
            baselines=self.baselines, ingest=self._ingest_pool(config),
        )  # fmt: skip

    def _ingest_pool(self, config: Config) -> IngestPool:
        """The pool of ingest workers, made the first time a dashboard needs one."""
        if self._ingest is None:
            from server.logs.workers import IngestPool

            self._ingest = IngestPool(config.logs.workers, config.logs.worker_queue,
                                      stats=self.ingest_stats)  # fmt: skip
        return self._ingest

    def shutdown(self) -> int:
        started = time.monotonic()
        # no new connections from now; requests being served go on to their answer, the
        # rest are answered 503 (never a connection dropped under a request we stored)
        self.web.close_door()
        log.info("stopping: waiting for %d checks in flight and %d requests",
                 self.scheduler.in_flight(), self.web.held())  # fmt: skip
        longest = max((s.timeout.total_seconds() for s in self.config.services), default=0.0)
        self.scheduler.shutdown(wait_seconds=min(longest, STOP_GRACE))
        self.jobs.shutdown()
        self.web.wait_answered(max(DRAIN_GRACE - (time.monotonic() - started), 0.0))
        if self._ingest is not None:
            self._ingest.stop()  # a request still at a worker: 503, nothing of it stored
        self.web.stop(grace=ANSWER_GRACE)
        self.dispatcher.stop(deadline=NOTIFY_GRACE)
        self.alert_log.sync()  # transitions no notice carried to disk yet
        self.writer.stop(timeout=WRITE_GRACE)
        waiting = self.writer.pending_rows()
        if not within(self.storage.close, CLOSE_GRACE, "lightbulb-close"):
            log.error("ClickHouse did not close in %.1f s: a call into it is stuck (an insert "
                      "that met a shortage of file descriptors, or the engine hung); exiting "
                      "without it: %d rows stay in the spool at %s, on disk, and the next "
                      "start inserts them", CLOSE_GRACE, waiting,
                      self.writer.spool.wal.directory)  # fmt: skip
            return 1
        lost = self.writer.stats.rows_dropped
        log.info(
            "stopped (%d rows written, %d rows kept in the spool for the next start%s)",
            self.writer.stats.rows_written,
            waiting,
            f", {lost} rows lost: the spool's disk was full" if lost else "",
        )
        return 0

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        """Apply the file as it is now, or keep everything running as it was.

        Never raises: nothing a file holds may stop the daemon.
        """
        try:
            config = load_config(self.config_path)
            self.secrets.keep()
        except ConfigError as exc:
            outcome = "the running config stays, unchanged"
            log.error("reload rejected, keeping the running config:\n%s", exc.report(outcome))
            return
        except Exception:  # a bug in validation must not take the daemon down either
            log.exception("reload rejected (unexpected error), keeping the running config")
            return
        missing = missing_sections(self.config, config)
        if missing:
            log.error(
                "reload rejected, keeping the running config: %s no longer sets %s "
                "(a file cut short?); to drop a section on purpose write it empty "
                "(`services: []`, `channels: {}`)",
                self.config_path,
                ", ".join(missing),
            )
            return
        try:
            refused = self.web.apply(config)  # first: the one step that can fail on its own
        except Exception:
            log.exception("reload rejected (dashboard not moved), keeping the running config")
            return
        if refused is not None:
            log.error("reload rejected, keeping the running config: %s", refused)
            return
        try:
            self._apply(config)
        except Exception:
            log.exception("reload failed part-way; fix the cause and reload again")

    def _apply(self, config: Config) -> None:
        if config.clickhouse != self.config.clickhouse:
            log.warning("clickhouse settings changed; they take effect on restart")
        if config.channels != self.config.channels or config.alerting != self.config.alerting:
            self.dispatcher.configure(config)  # queued notices stay; none is sent twice
        self.alerts.configure(config)
        self.jobs.reconfigure(config)
        self.baselines.config = config.baselines
        if config.logs.workers != self.config.logs.workers:
            log.warning("logs.workers changed; it takes effect on restart")
        if self._ingest is not None:
            self._ingest.queue = config.logs.worker_queue
        old_logs = self.config.logs
        logs_changed = [name for name in type(config.logs).model_fields  # names, not values
                        if getattr(config.logs, name) != getattr(old_logs, name)]  # fmt: skip
        if logs_changed:
            log.info("logs settings changed: %s", ", ".join(logs_changed))
        self._record_coverage(self.config, config)
        entries_changed = describe(self.config, config)
        self.config = config
        temporal_budget.configure(config.temporal.max_visibility_rps)
        changes = self.scheduler.sync(list(config.services))
        freeze_startup_objects()
        try:
            sync_config_tables(self.storage, config, self.clock.now())
        except StorageError as exc:
            log.warning("config tables not synced (storage unavailable): %s", exc)
        log.info(
            "reloaded %s: services: added %s, removed %s, changed %s; %s",
            self.config_path,
            changes["added"] or "none",
            changes["removed"] or "none",
            changes["changed"] or "none",
            entries_changed,
        )

    def _record_coverage(self, before: Config, after: Config) -> None:
        """Which services a rule selects from now on (:mod:`server.analytics.rule_coverage`),
        stored at once, or through the write-ahead log while ClickHouse does not answer."""
        now = self.clock.now()
        try:
            record(self.storage, after, now)
        except StorageError as exc:
            log.warning("rule coverage kept in the spool (storage unavailable): %s", exc)
            for row in changes(coverage(before), after, now):
                self.writer.add("rule_coverage", row)
