"""The daemon's periodic work on APScheduler: the jobs it registers, and a failed daily
report scheduled again instead of being marked done."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from server.alerting.log import AlertLog
from server.analytics.baselines import Baselines
from server.periodic import BaselineJob, PeriodicJobs, ReportJob
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
        assert "hour='2', minute='30'" in str(cron)
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
