"""The daemon's periodic work on APScheduler: the jobs it registers, and a failed daily
report scheduled again instead of being marked done."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from server.alerting.log import AlertLog
from server.analytics.baselines import Baselines
from server.analytics.report import day_bounds
from server.periodic import BaselineJob, PeriodicJobs, ReportJob, report_day, report_zone
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.conftest import wait_until
from tests.support.clock import FakeClock

CONFIG = """
services:
  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
report: {time: "02:30", timezone: Europe/Berlin}
"""


class Reachable:
    reachable = True

    def add_durable(self, table: str, rows: list[tuple[object, ...]]) -> None:
        raise AssertionError("a report that failed to build is not stored")


def test_periodic_work_runs_as_interval_and_cron_jobs_and_a_failed_report_is_retried(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG, "t.yaml")
    store = EmbeddedStorage(tmp_path / "db", "monitor")  # no schema: every build fails
    clock = FakeClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    report = ReportJob(config, store, Reachable(), dispatcher=None,
                       alert_log=AlertLog(None, store), clock=clock)  # fmt: skip
    ticks: list[int] = []
    jobs = PeriodicJobs(
        clock, tick=lambda: ticks.append(1), record_self=lambda: None,
        baselines=BaselineJob(Baselines(config.baselines), store, Reachable(), clock),
        report=report,
    )  # fmt: skip
    try:
        jobs.start()
        aps = jobs._aps
        assert isinstance(aps.get_job("alert-tick").trigger, IntervalTrigger)
        assert isinstance(aps.get_job("baselines").trigger, IntervalTrigger)
        cron = aps.get_job("report").trigger
        assert isinstance(cron, CronTrigger) and str(cron.timezone) == "Europe/Berlin"
        assert "minute='30'" in str(cron)  # hourly: ReportJob.due decides
        # at start, a catch-up run: at 09:00 yesterday's report is due, and its build fails
        assert wait_until(lambda: aps.get_job("report-retry") is not None)
        assert report.done is None and report.failures == 1
        retry = aps.get_job("report-retry")
        assert retry is not None
        wait = (retry.next_run_time - datetime.now(UTC)).total_seconds()
        assert 50 < wait <= 60
        jobs._report()  # fails again: the wait doubles
        wait = (aps.get_job("report-retry").next_run_time - datetime.now(UTC)).total_seconds()
        assert 110 < wait <= 120
    finally:
        jobs.shutdown()
        store.close()


# -- which day a report covers: the previous complete day in report.timezone --------------
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe",
         "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]  # fmt: skip
AROUND = [  # DST changes (Europe, US, Lord Howe) and an ordinary day
    datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 7, 12, tzinfo=UTC),
    datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 4, 4, 6, tzinfo=UTC),
    datetime(2026, 11, 29, 12, tzinfo=UTC),
]  # fmt: skip


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("at", ["00:00", "02:30", "23:59"])
def test_the_report_day_is_always_the_previous_complete_local_day(zone: str, at: str) -> None:
    tz = ZoneInfo(zone)
    for start in AROUND:
        for step in range(0, 72 * 4):  # every 15 minutes over three days, midnights included
            now = start + timedelta(minutes=15 * step)
            day = report_day(now, tz, at)
            local = now.astimezone(tz)
            if day is None:
                assert (local.hour, local.minute) < tuple(int(p) for p in at.split(":"))
                continue
            begin, end = day_bounds(day, tz)
            assert end <= now, f"{zone} {now}: report of {day} built before it ended"
            assert day == local.date() - timedelta(days=1)
            assert begin.astimezone(tz).date() == day and begin.astimezone(tz).hour == 0


def test_a_dst_change_day_is_23_or_25_hours_long() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = day_bounds(date(2026, 3, 29), berlin)
    autumn = day_bounds(date(2026, 10, 25), berlin)
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    assert day_bounds(date(2026, 11, 29)) == (
        datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    )  # fmt: skip


def test_report_job_due_follows_the_report_zone_not_utc_or_the_machine(tmp_path: Path) -> None:
    config = parse_config(CONFIG.replace("Europe/Berlin", "Asia/Tokyo"), "t.yaml")
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        clock = FakeClock(datetime(2026, 11, 29, 17, 29, tzinfo=UTC))  # 02:29 in Tokyo
        job = ReportJob(config, store, Reachable(), dispatcher=None,
                        alert_log=AlertLog(None, store), clock=clock)  # fmt: skip
        assert job.due(clock.now()) is None
        clock.advance(60)  # 02:30 Tokyo, 17:30 UTC: the Tokyo 29th ended at 15:00 UTC
        assert job.due(clock.now()) == date(2026, 11, 29)
        assert day_bounds(date(2026, 11, 29), job.zone())[1] <= clock.now()
    finally:
        store.close()


def test_an_empty_report_timezone_is_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert str(report_zone("")) == "America/New_York"
    assert str(report_zone("Asia/Tokyo")) == "Asia/Tokyo"


class SlowFailingReport(ReportJob):
    """A report build that is in flight when SIGTERM comes, then fails (wants a retry)."""

    started = threading.Event()
    release = threading.Event()

    def run(self) -> bool:
        self.started.set()
        self.release.wait(30)
        return False


def test_shutdown_during_a_failing_report_completes_and_schedules_no_retry(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG, "t.yaml")
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    clock = FakeClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    report = SlowFailingReport(config, store, Reachable(), dispatcher=None,
                               alert_log=AlertLog(None, store), clock=clock)  # fmt: skip
    jobs = PeriodicJobs(
        clock, tick=lambda: None, record_self=lambda: None,
        baselines=BaselineJob(Baselines(config.baselines), store, Reachable(), clock),
        report=report,
    )  # fmt: skip
    done: list[bool] = []
    try:
        jobs.start()
        assert report.started.wait(10)  # the catch-up build is in flight
        stopper = threading.Thread(target=lambda: done.append(jobs.shutdown(wait_seconds=20)))
        stopper.start()
        assert wait_until(lambda: jobs._aps.state == STATE_STOPPED)
        report.release.set()  # the build fails now, while the scheduler stops
        stopper.join(10)
        assert not stopper.is_alive(), "shutdown deadlocked against the report's retry"
        assert done == [True]
        assert jobs._aps.get_job("report-retry") is None
    finally:
        report.release.set()
        store.close()


def test_a_stop_right_after_start_ends_the_scheduler_without_an_error_in_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # APScheduler 3 marks itself stopped before taking its job-store lock: a stop while
    # its loop was removing the finished run-once catch-up job killed the loop thread
    # with "JobLookupError: No job by the id of report-catch-up" (SIGTERM at start-up)
    config = parse_config(CONFIG, "t.yaml")
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    clock = FakeClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    caplog.set_level("ERROR")
    try:
        for _ in range(30):
            ran = threading.Event()
            report = ReportJob(config, store, Reachable(), dispatcher=None,
                               alert_log=AlertLog(None, store), clock=clock)  # fmt: skip
            report.run = lambda ran=ran: ran.set() or True  # type: ignore[method-assign]
            jobs = PeriodicJobs(
                clock, tick=lambda: None, record_self=lambda: None,
                baselines=BaselineJob(Baselines(config.baselines), store, Reachable(), clock),
                report=report,
            )  # fmt: skip
            jobs.start()
            assert ran.wait(10)  # the catch-up ran: its loop pass is removing it now
            assert jobs.shutdown(wait_seconds=5)
            assert wait_until(lambda jobs=jobs: jobs._aps.state == STATE_STOPPED)
            thread = jobs._aps._thread
            assert thread is None or (thread.join(5) or not thread.is_alive())
    finally:
        store.close()
    assert died == [], died
    assert not [r for r in caplog.records if r.name.startswith("apscheduler")], caplog.text


def test_a_job_failing_every_run_for_one_cause_is_said_once_and_its_end_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's own row failed every 15 s with a full EMFILE traceback from psutil
    (atk12d): a real shortage here, the same psutil read, three runs: one ERROR, then
    one line when it runs again."""
    from server.self_monitor import own_usage
    from tests.test_spool_reads import descriptors_used_up

    config = parse_config(CONFIG, "t.yaml")
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    clock = FakeClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    jobs = PeriodicJobs(
        clock, tick=lambda: None, record_self=lambda: None,
        baselines=BaselineJob(Baselines(config.baselines), store, Reachable(), clock),
        report=ReportJob(config, store, Reachable(), dispatcher=None,
                         alert_log=AlertLog(None, store), clock=clock),
    )  # fmt: skip

    def record_self() -> None:
        own_usage()

    run = jobs._guard(record_self)
    caplog.set_level(logging.INFO, "lightbulb.periodic")
    try:
        with descriptors_used_up():
            for _ in range(3):
                run()
        run()
    finally:
        store.close()
    said = [r for r in caplog.records if r.name == "lightbulb.periodic"]
    assert [r.levelname for r in said] == ["ERROR", "INFO"], [r.getMessage() for r in said]
    assert "record_self failed" in said[0].getMessage() and said[0].exc_info is not None
    assert said[1].getMessage() == "periodic job record_self runs again (3 runs failed)"
