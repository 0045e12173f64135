"""The daily report over generated history: incidents, MTTR, uptime, error patterns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from server.alerting.log import TABLES, AlertLog
from server.analytics.report import build, publish
from server.logs.patterns import pattern_of
from server.notify.dispatcher import Dispatcher
from server.recorder import LOG_COLUMNS
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.validation import parse_config
from tests.conftest import run_cli
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver

DAY = date(2026, 11, 21)
T = datetime(2026, 11, 21, tzinfo=UTC)
CONFIG = """
services:
  - {id: db, label: Database, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
  - {id: api, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/"}
alert_rules:
  - {id: down, service: "*", condition: "status >= FAILED", channels: [hook]}
  - {id: odd, service: api, condition: "anomaly response_time_ms z > 4", channels: [hook]}
report: {channels: [hook]}
"""


def transition(at: datetime, rule: str, service: str, to: str, message: str = "") -> tuple:
    before = {"firing": "inactive", "resolved": "firing"}[to]
    return (at, "transition", rule, service, before, to, "critical", 2.0, message, [], "queued",
            "", "")  # fmt: skip


def generate(store: EmbeddedStorage) -> None:
    apply_schema(store, Target("monitor"))
    # checks every minute for both services; db fails 03:10-03:40
    store.execute(
        """
        INSERT INTO monitor.service_status
            (service_id, timestamp, status_code, message, service_type, stack, details)
        SELECT if(number % 2 = 0, 'db', 'api') AS service_id,
               {day:DateTime64(3, 'UTC')} + toIntervalMinute(intDiv(number, 2)) AS ts,
               if(service_id = 'db' AND toHour(ts) = 3 AND toMinute(ts) >= 10
                  AND toMinute(ts) < 40, 2, 0), 'x', 'tcp', 'default', '{}'
        FROM numbers(2 * 1440)
        """,
        {"day": T},
    )
    events = [
        transition(T + timedelta(hours=3, minutes=10), "down", "db", "firing",
                   "connection refused"),
        transition(T + timedelta(hours=3, minutes=40), "down", "db", "resolved"),
        transition(T + timedelta(hours=14), "odd", "api", "firing", "z=6.2"),
        transition(T + timedelta(hours=15, minutes=15), "odd", "api", "resolved"),
        transition(T - timedelta(hours=5), "down", "api", "firing", "the day before"),
        transition(T - timedelta(hours=4), "down", "api", "resolved"),
    ]  # fmt: skip
    store.insert("alert_events", TABLES["alert_events"], events)
    logs = [("api", T - timedelta(hours=2), "ERROR", "retry 1 failed"),
            ("api", T + timedelta(hours=1), "ERROR", "retry 2 failed"),
            ("api", T + timedelta(hours=2), "ERROR", "retry 3 failed"),
            ("db", T + timedelta(hours=3, minutes=11), "ERROR", "disk /data/db full")]  # fmt: skip
    rows = [(s, at, lv, m, "t", None, None, {}, *pattern_of(lv, m)) for s, at, lv, m in logs]
    store.insert("service_logs", LOG_COLUMNS, rows)


def test_the_report_lists_both_incidents_with_their_durations(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        generate(store)
        config = parse_config(CONFIG, "t.yaml", {})
        report = build(store, config, DAY, T + timedelta(days=1, hours=2))
        assert [(i.service_id, i.rule_id, i.start.strftime("%H:%M"), i.duration)
                for i in report.incidents] == [
            ("db", "down", "03:10", "30m"), ("api", "odd", "14:00", "1h 15m")]  # fmt: skip
        assert report.mttr_s == (30 + 75) * 60 / 2
        uptime = {s["service_id"]: s["uptime"] for s in report.services}
        assert uptime == {"api": 100.0, "db": round(100 * (1440 - 30) / 1440, 3)}
        assert [p["pattern"] for p in report.new_patterns] == ["disk <path> full"]
        assert [(p["pattern"], p["before"], p["count"]) for p in report.growing_patterns] == [
            ("retry <num> failed", 1, 2)]  # fmt: skip
        assert [a["service_id"] for a in report.anomalies] == ["api"]
        html, text = report.render()
        assert "03:10 UTC  30m  db / down [critical]: connection refused" in text
        assert "MTTR 52m" in text or "MTTR 53m" in text
        assert html.count('class="incident"') == 2

        receiver = HttpReceiver()
        try:
            hooked = parse_config(CONFIG.replace("http://127.0.0.1:9/", receiver.url), "t.yaml")
            sink = StoreSink(store)
            alert_log = AlertLog(sink, store)
            dispatcher = Dispatcher(hooked, FakeClock(), alert_log)
            assert publish(report, sink, dispatcher, hooked, alert_log) == 1
            assert publish(report, sink, dispatcher, hooked, alert_log) == 0  # queued once
            dispatcher.step()
        finally:
            receiver.close()
        assert store.query("SELECT day FROM monitor.reports")[0]["day"] == DAY
        assert [(r.json["kind"], r.json["title"]) for r in receiver.requests] == [
            ("report", "Lightbulb daily report for 2026-11-21")]  # fmt: skip
        assert receiver.requests[0].headers["Idempotency-Key"] == "report-2026-11-21-hook"

        from server.web import WebContext, create_app

        client = create_app(WebContext(config, store, FakeClock())).test_client()
        listing = client.get("/reports").get_data(as_text=True)
        assert 'data-day="2026-11-21"' in listing
        page = client.get("/reports/2026-11-21").get_data(as_text=True)
        assert page.count('class="incident"') == 2
        assert client.get("/reports/2026-01-01").status_code == 404
        assert client.get("/reports/yesterday").status_code == 400
    finally:
        store.close()


def test_todays_report_ends_a_still_firing_incident_at_build_time(tmp_path: Path) -> None:
    """Built at 14:08 with an alert firing since 04:15: 9h 53m so far, not 19h 45m."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        fired = transition(T + timedelta(hours=4, minutes=15), "down", "db", "firing", "refused")
        store.insert("alert_events", TABLES["alert_events"], [fired])
        config = parse_config(CONFIG, "t.yaml", {})
        report = build(store, config, DAY, T + timedelta(hours=14, minutes=8))
        assert [(i.service_id, i.duration, i.end) for i in report.incidents] == [
            ("db", "9h 53m", None)
        ]
        assert "9h 53m (still firing)" in report.render()[1]
        yesterday = build(store, config, DAY, T + timedelta(days=1, hours=2))
        assert [i.duration for i in yesterday.incidents] == ["19h 45m"]  # to midnight
    finally:
        store.close()


def test_report_command_prints_a_report_for_a_date(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        generate(store)
    finally:
        store.close()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(CONFIG + f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n")
    done = run_cli("-m", "server.cli", "report", "--date", "2026-11-21", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Lightbulb daily report for 2026-11-21")
    assert "1h 15m" in done.stdout
    bad = run_cli("-m", "server.cli", "report", "--date", "21/11/2026", "--config", str(config))
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_the_daemon_builds_yesterdays_report_once_after_report_time_and_retries_a_failure(
    tmp_path: Path,
) -> None:
    from server.daemon import Daemon

    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        CONFIG.replace("report: {channels: [hook]}", "report: {time: '02:00', timezone: UTC}")
        + f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        + f"scheduler: {{spool_dir: {tmp_path / 'spool'}}}\n"
    )
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        generate(store)
    finally:
        store.close()
    clock = FakeClock(datetime(2026, 11, 22, 1, 59, tzinfo=UTC))
    daemon = Daemon(str(config), clock=clock)
    job = daemon.report
    try:
        assert daemon.writer.ensure_ready()
        assert job.run() and job.done is None  # 01:59: not yet
        clock.advance(60)
        # the build fails at 02:00 (a table it reads is gone): the day is not marked done
        daemon.storage.execute("RENAME TABLE monitor.service_status_daily TO monitor.away")
        assert not job.run()
        assert job.done is None and job.retry_delay() == 60
        daemon.writer.flush()
        assert daemon.storage.query("SELECT day FROM monitor.reports") == []
        daemon.storage.execute("RENAME TABLE monitor.away TO monitor.service_status_daily")
        clock.advance(60)
        assert job.run()  # the retry
        assert job.done == DAY
        assert job.run()  # once per day: nothing more
        daemon.writer.flush()  # stored means on disk (the write-ahead log); now in ClickHouse too
        assert [r["day"] for r in daemon.storage.query("SELECT day FROM monitor.reports")] == [DAY]
    finally:
        daemon.writer.stop()
        daemon.storage.close()


class StoreSink:
    """The writer's part a report needs: rows straight into the store."""

    def __init__(self, store: EmbeddedStorage) -> None:
        self.store = store

    def add(self, table: str, row: tuple) -> None:
        self.store.insert(table, WRITTEN_TABLES[table], [row])

    def add_durable(self, table: str, rows: list[tuple]) -> None:
        self.store.insert(table, WRITTEN_TABLES[table], rows)

    def durable(self, tables: dict[str, list[tuple]]) -> None:
        for table, rows in tables.items():
            if rows:
                self.add_durable(table, rows)


def test_the_report_counts_the_same_incidents_as_the_incidents_page(tmp_path: Path) -> None:
    # the attack: `lightbulb report` said "Incidents (3)" (alert firings only) while
    # /incidents listed 9 that day, with the FAILED runs of services no rule watches
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        generate(store)
        cache = "  - {id: cache, type: tcp, tcp: {host: 127.0.0.1, port: 1}}\n"
        watched = CONFIG.replace("  - {id: api, type: tcp", cache + "  - {id: api, type: tcp")
        config = parse_config(watched.replace('service: "*"', "service: db"), "t.yaml", {})
        changed = "status changed"
        runs = [
            ("cache", T + timedelta(hours=6), 0, 2, f"{changed} OK -> FAILED: refused"),
            ("cache", T + timedelta(hours=6, minutes=20), 2, 0, f"{changed} FAILED -> OK: ok"),
            ("cache", T + timedelta(hours=22), 0, 2, f"{changed} OK -> FAILED: timed out"),
        ]
        columns = ("service_id", "timestamp", "from_status", "to_status", "message")
        store.insert("service_transitions", columns, runs)
        now = T + timedelta(days=1, hours=2)
        report = build(store, config, DAY, now)
        assert [
            (i.service_id, i.rule_id, i.start.strftime("%H:%M"), i.duration, i.end is None)
            for i in report.incidents
        ] == [
            ("db", "down", "03:10", "30m", False),
            ("cache", "", "06:00", "20m", False),
            ("api", "odd", "14:00", "1h 15m", False),
            ("cache", "", "22:00", "2h 00m", True),
        ]
        from server.web import WebContext, create_app

        client = create_app(WebContext(config, store, FakeClock(now))).test_client()
        listed = client.get("/api/v1/incidents?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z")
        assert sorted(i["id"] for i in listed.get_json()["incidents"]) == sorted(
            i.id for i in report.incidents)  # fmt: skip
        text = report.render()[1]
        assert "06:00 UTC  20m  cache / FAILED checks [critical]: refused" in text
        assert "22:00 UTC  2h 00m (ongoing)  cache / FAILED checks" in text
        assert [a["duration"] for a in report.anomalies] == ["1h 15m"]
    finally:
        store.close()


def test_reports_and_notices_show_a_control_character_as_u_fffd() -> None:
    """The stored report is shown on /reports/<day> as markup: it must already follow
    the pages' rule (BEL, NUL, ESC as U+FFFD), in HTML and text alike."""
    from server.templating import environment

    env = environment("report")
    assert (
        env.from_string("<p>{{ x }}</p>").render(x="a\x07<b>\x00")
        == "<p>a\ufffd&lt;b&gt;\ufffd</p>"
    )
