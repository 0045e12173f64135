"""Storage unreachable when the daemon starts: nothing of the state before the stop is
lost once it answers, and nothing is told twice.

The daemon is built in-process on a real embedded chDB with its real writer, alert
engine and dispatcher (to a loopback webhook receiver), driven by a pinned clock.
"Unreachable" is the writer not having prepared storage yet: results are recorded
and spooled, and storage "answers" when the writer's before-first-write step runs,
as when ClickHouse comes up after the daemon.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from checkers.base import CheckResult, Status
from server.daemon import Daemon
from tests.support.clock import FakeClock
from tests.support.receivers import HttpReceiver

CONFIG = """
services:
  - {{id: db, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
alert_rules:
  - {{id: down, service: db, condition: "status >= FAILED", channels: [hook]}}
channels:
  hook: {{type: webhook, url: "{url}/hook"}}
alerting: {{group_wait: 0s}}
clickhouse: {{embedded_path: {db}}}
scheduler: {{spool_dir: {spool}}}
"""


class Run:
    """One daemon run on the shared files; ``ready``: storage answers at start."""

    def __init__(self, config: Path, clock: FakeClock, *, ready: bool) -> None:
        self.daemon = d = Daemon(str(config), clock=clock)
        self.clock = clock
        if ready:  # what run() does when the first readiness attempt succeeds
            assert d.writer.ensure_ready() and d._restore_alerts()
        else:  # ... and when it fails: checks run, results are spooled
            d._restore_due = True
        d._checking = True

    def result(self, status: Status, advance: float = 10) -> None:
        d = self.daemon
        d.recorder.record(
            d.config.services[0], CheckResult(status, status.name), self.clock.advance(advance)
        )
        d.dispatcher.step()

    def tick(self) -> None:
        self.daemon._tick_alerts()
        self.daemon.dispatcher.step()

    def stop(self) -> None:
        d = self.daemon
        d.alert_log.sync()
        d.writer.flush()
        d.writer.stop()
        d.storage.close()

    def query(self, sql: str) -> list[dict]:
        self.daemon.writer.flush()
        return self.daemon.storage.query(sql)


def setup(tmp_path: Path, receiver: HttpReceiver) -> tuple[Path, FakeClock]:
    """The config file both runs read, and the clock they share."""
    config = tmp_path / "lightbulb.yaml"
    config.write_text(CONFIG.format(url=receiver.url, db=tmp_path / "db", spool=tmp_path / "spool"))
    return config, FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


def told(receiver: HttpReceiver) -> list[str]:
    return [a["status"] for r in receiver.answered("/hook") for a in r.json["alerts"]]


def test_a_firing_that_ended_while_storage_was_down_at_start_is_resolved_once(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    config, clock = setup(tmp_path, receiver)
    first = Run(config, clock, ready=True)
    first.result(Status.OK)
    first.result(Status.FAILED)
    assert told(receiver) == ["firing"]
    first.stop()

    clock.advance(5)  # the restart
    second = Run(config, clock, ready=False)
    try:
        second.result(Status.OK, advance=60)  # db recovered while the daemon was stopped
        second.tick()
        assert told(receiver) == ["firing"]  # the engine knows of no firing yet
        assert second.daemon.writer.ensure_ready()  # storage answers
        for _ in range(3):
            second.tick()
        assert told(receiver) == ["firing", "resolved"]
        second.result(Status.OK)
        second.tick()
        assert told(receiver) == ["firing", "resolved"]
        rows = second.query("SELECT to_state FROM monitor.alert_events "
                            "WHERE event = 'transition' ORDER BY timestamp")  # fmt: skip
        assert [r["to_state"] for r in rows] == ["firing", "resolved"]
    finally:
        second.stop()


def test_the_first_status_change_after_a_start_without_storage_is_logged_once(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    config, clock = setup(tmp_path, receiver)
    first = Run(config, clock, ready=True)
    first.result(Status.OK)
    first.stop()

    clock.advance(5)  # the restart
    second = Run(config, clock, ready=False)
    try:
        second.result(Status.FAILED, advance=60)  # OK before the stop: a change
        changed_at = clock.now()
        second.result(Status.FAILED)
        assert second.daemon.writer.ensure_ready()  # storage answers
        second.daemon._prepare_storage()  # ... and again, as after a lost connection
        rows = second.query("SELECT timestamp, message FROM monitor.service_logs "
                            "WHERE source = 'lightbulb.transition' ORDER BY timestamp")  # fmt: skip
        assert [(r["timestamp"].replace(tzinfo=UTC), r["message"]) for r in rows] == [
            (changed_at, "status changed OK -> FAILED: FAILED")
        ]
    finally:
        second.stop()


def test_a_firing_told_while_storage_was_down_at_start_is_not_resumed_again_by_the_restore(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    """The late restore reads back this run's own notice (still retrying): it must not
    be queued a second time beside the one the outbox holds."""
    config, clock = setup(tmp_path, receiver)
    first = Run(config, clock, ready=True)
    first.result(Status.OK)
    first.stop()

    clock.advance(5)
    second = Run(config, clock, ready=False)
    try:
        receiver.failing = True
        try:
            second.result(Status.FAILED, advance=60)  # told (tried) during the outage
            assert second.daemon.writer.ensure_ready()  # storage answers
            second.tick()  # the late restore
            second.tick()
        finally:
            receiver.failing = False
        for _ in range(60):
            clock.advance(1)
            second.tick()
            if told(receiver):
                break
        for _ in range(3):
            clock.advance(30)
            second.tick()
        assert told(receiver) == ["firing"]
        assert len({r.headers["Idempotency-Key"] for r in receiver.arrivals}) == 1
    finally:
        second.stop()


def test_a_firing_left_retrying_at_the_stop_is_not_sent_after_the_alert_fired_again(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    """Stopped while its firing was retrying, restarted without storage, the alert fires
    again (a new incident, told at once): once storage answers, the old firing is stale
    and recorded dropped, not sent as a second firing."""
    config, clock = setup(tmp_path, receiver)
    first = Run(config, clock, ready=True)
    receiver.failing = True
    try:
        first.result(Status.FAILED)
        first.tick()
        first.stop()
    finally:
        receiver.failing = False
    clock.advance(5)
    second = Run(config, clock, ready=False)
    try:
        second.result(Status.FAILED, advance=60)
        assert told(receiver) == ["firing"]  # the new incident's
        assert second.daemon.writer.ensure_ready()  # storage answers
        for _ in range(5):
            clock.advance(30)
            second.tick()
        assert told(receiver) == ["firing"]
        rows = second.query(
            "SELECT notice_id, argMax(state, revision) AS last FROM monitor.notifications "
            "GROUP BY notice_id ORDER BY last"
        )
        assert [r["last"] for r in rows] == ["delivered", "dropped"]
    finally:
        second.stop()
