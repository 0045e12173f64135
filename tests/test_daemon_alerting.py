"""Alerting end to end: a real daemon, a real process killed, real loopback receivers.

Every test waits on events or on the daemon's own figures (``/metrics``,
``/api/v1/alerts``, its log), never on a sleep, and asserts exact arrival counts
and order at the receiver, so it holds on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.support.receivers import HttpReceiver, Received, refused_port
from tests.test_daemon import WORKER, no_leaked_daemons, query

__all__ = ["no_leaked_daemons"]  # the autouse fixture, shared
TOKEN = "t0ken-for-tests"
RULE = "worker-down"


class Worker:
    """A real process the daemon watches by a tag on its command line."""

    def __init__(self) -> None:
        self.tag = f"lb-alert-test-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, self.tag])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    w.start()
    yield w
    w.kill()


class Lightbulb:
    """One daemon config (and its restarts) with its HTTP endpoints.

    The worker is checked every second: its check's timeout is its interval, and a
    process-table scan on a loaded machine can take a few hundred milliseconds.
    """

    def __init__(self, tmp_path: Path, worker: Worker, channels: str, alerting: str) -> None:
        self.tmp_path, self.port = tmp_path, free_port()
        self.config = tmp_path / "lightbulb.yaml"
        self.config.write_text(f"""
clickhouse: {{embedded_path: {tmp_path / "db"}}}
scheduler: {{spool_dir: {tmp_path / "spool"}, flush_interval: 200ms, insert_interval: 200ms}}
dashboard:
  port: {self.port}
  auth: {{type: bearer, tokens: {{ops: {TOKEN}}}}}
channels:
{channels}
alert_rules:
  - {{id: {RULE}, service: worker, condition: "status >= FAILED", severity: critical,
     channels: [ops-hook]}}
alerting: {alerting}
services:
  - {{id: worker, type: python_process, interval: 1s, python_process: {{cmdline: {worker.tag}}}}}
""")
        self.daemon: DaemonProcess | None = None

    def start(self) -> DaemonProcess:
        self.daemon = DaemonProcess(self.config, self.tmp_path)
        self.daemon.wait_for("storage ready")
        self.daemon.wait_for("dashboard and API", seconds=10)
        return self.daemon

    def get(self, path: str) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return str(response.read().decode())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            result: dict[str, Any] = json.load(response)
            return result

    def alert(self) -> dict[str, Any] | None:
        alerts = json.loads(self.get("/api/v1/alerts"))["alerts"]
        return next((a for a in alerts if a["id"] == f"{RULE}:worker"), None)

    def state(self) -> str | None:
        alert = self.alert()
        return alert["state"] if alert else None

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the daemon's own /metrics (0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = re.escape(name + (f"{{{want}}}" if want else "")) + r" ([0-9.e+-]+)$"
        match = re.search(pattern, self.get("/metrics"), re.M)
        return float(match.group(1)) if match else 0.0

    def wait_metric(self, name: str, at_least: float, seconds: float = 20, **labels: str) -> None:
        assert wait_until(lambda: self.metric(name, **labels) >= at_least, seconds), (
            f"{name}{labels} never reached {at_least}: {self.metric(name, **labels)}"
        )

    def checks(self) -> float:
        return self.metric("lightbulb_checks_total")

    def wait_checks(self, more: int) -> None:
        """Let the daemon run ``more`` further checks: its chance to do anything wrong."""
        target = self.checks() + more
        assert wait_until(lambda: self.checks() >= target, 20)

    def events(self) -> list[tuple[Any, ...]]:
        rows = query(
            self.tmp_path,
            "SELECT event, from_state, to_state, delivery_result FROM monitor.alert_events "
            "WHERE rule_id != '' ORDER BY timestamp, event",
        )
        return [tuple(r.values()) for r in rows]


def hook(receiver: HttpReceiver, extra: str = "") -> str:
    return f'  ops-hook: {{type: webhook, url: "{receiver.url}/hook"{extra}}}'


def told(arrivals: list[Received]) -> list[tuple[int, str]]:
    """(answer, alert status) of every arrival, in order."""
    return [(a.status, a.json["alerts"][0]["status"]) for a in arrivals]


def test_a_killed_process_is_notified_once_across_a_restart_and_its_recovery_once(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{group_wait: 100ms}")
    daemon = lb.start()
    worker.kill()
    firing = receiver.wait_for(1)[0].json
    assert (firing["status"], firing["alerts"][0]["service_id"]) == ("firing", "worker")
    # the notice may well beat the check's row to storage: wait for what the pages read
    assert wait_until(lambda: lb.state() == "firing")
    assert wait_until(
        lambda: (
            lb.metric(
                "lightbulb_service_status", service="worker", stack="default", type="python_process"
            )
            == 2.0
        )
    )
    assert json.loads(lb.get("/readyz")) == {
        "status": "ready",
        "storage": True,
        "scheduler": True,
        "spool": True,
    }
    lb.wait_metric("lightbulb_notifications_delivered_total", 1, channel="ops-hook")
    assert lb.metric("lightbulb_alerts_firing") == 1.0
    alert = lb.alert()
    assert alert is not None and alert["notified"] is True, (alert, daemon.output)
    assert [d["state"] for d in alert["delivery"]] == ["delivered"]
    assert 'lightbulb_check_duration_seconds{service="worker"}' in lb.get("/metrics")
    code, _ = daemon.stop()
    assert code == 0, daemon.output

    daemon = lb.start()
    daemon.wait_for("alert state restored: 1 alerts")
    lb.wait_checks(5)  # failing checks after the restart: the channel was already told
    assert len(receiver.arrivals) == 1
    worker.start()
    resolved = receiver.wait_for(2)[1].json
    assert resolved["status"] == "resolved"
    assert re.fullmatch(r"\[RESOLVED\] worker recovered after \d+(ms|s|m \d+s|s) \(worker-down\)",
                        resolved["title"]), resolved["title"]  # fmt: skip
    lb.wait_metric("lightbulb_notifications_delivered_total", 1, channel="ops-hook")
    lb.wait_checks(5)
    assert len(receiver.arrivals) == 2
    code, _ = daemon.stop()
    assert code == 0, daemon.output
    assert lb.events() == [
        ("transition", "inactive", "firing", "queued"),
        ("delivery", "firing", "firing", "sent"),
        ("transition", "firing", "resolved", "queued"),
        ("delivery", "resolved", "resolved", "sent"),
    ]


def test_an_incident_shorter_than_group_wait_sends_nothing_and_stays_in_history(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{group_wait: 5s}")
    daemon = lb.start()
    worker.kill()
    assert wait_until(lambda: lb.state() == "firing")
    worker.start()
    assert wait_until(lambda: lb.state() == "resolved")
    # the group flushes after 5 s: the resolve meets its firing there and both go
    lb.wait_metric("lightbulb_notifications_dropped_total", 1, channel="ops-hook")
    assert receiver.arrivals == []
    alert = lb.alert()
    assert alert is not None and (alert["notified"], alert["delivery"]) == (False, [])
    daemon.stop()
    assert lb.events() == [
        ("transition", "inactive", "firing", "queued"),
        ("transition", "firing", "resolved", "queued"),
        ("delivery", "resolved", "resolved", "dropped"),
    ]


def test_a_firing_outlives_a_receiver_answering_500_and_arrives_once_before_its_resolve(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    receiver.failing = True
    lb = Lightbulb(tmp_path, worker, hook(receiver),
                   "{group_wait: 0s, retry_backoff: 100ms, retry_max_backoff: 400ms}")  # fmt: skip
    daemon = lb.start()
    worker.kill()
    receiver.wait_arrivals(4)  # three retries, all answered 500
    alert = lb.alert()
    assert alert is not None and alert["notified"] is False
    (delivery,) = alert["delivery"]
    assert delivery["state"] == "retrying" and "HTTP 500" in delivery["error"]
    receiver.failing = False  # the receiver is back
    receiver.wait_for(1)
    worker.start()
    receiver.wait_for(2)
    lb.wait_metric("lightbulb_notifications_delivered_total", 2, channel="ops-hook")
    lb.wait_checks(3)
    arrivals = told(receiver.arrivals)
    assert arrivals[-2:] == [(200, "firing"), (200, "resolved")]
    assert set(arrivals[:-2]) == {(500, "firing")}  # every failure was the firing, retried
    firing_keys = {a.headers["Idempotency-Key"] for a in receiver.arrivals[:-1]}
    assert len(firing_keys) == 1  # one notice, one key, however many attempts
    daemon.stop()


def test_a_slow_receiver_gets_one_copy_and_never_two_requests_at_once(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    receiver.delay = 3.0  # longer than the 1 s connect timeout: it is the answer that is slow
    lb = Lightbulb(tmp_path, worker, hook(receiver, ", timeout: 1s"), "{group_wait: 0s}")
    daemon = lb.start()
    worker.kill()
    receiver.wait_for(1, seconds=20)
    worker.start()
    receiver.wait_for(2, seconds=20)
    lb.wait_metric("lightbulb_notifications_delivered_total", 2, channel="ops-hook")
    lb.wait_checks(3)
    assert told(receiver.arrivals) == [(200, "firing"), (200, "resolved")]
    assert receiver.max_in_flight == 1
    assert lb.metric("lightbulb_notification_attempts_total", channel="ops-hook") == 2
    daemon.stop()


def test_a_notice_retrying_at_kill_9_is_sent_once_after_the_restart_with_its_key(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    receiver.failing = True
    lb = Lightbulb(tmp_path, worker, hook(receiver),
                   "{group_wait: 0s, retry_backoff: 100ms, retry_max_backoff: 200ms}")  # fmt: skip
    daemon = lb.start()
    worker.kill()
    receiver.wait_arrivals(2)
    assert lb.post(f"/api/v1/alerts/{RULE}:worker/ack", {"comment": "on it"})[
        "acknowledged_by"] == "ops"  # fmt: skip
    daemon.kill()  # SIGKILL: no shutdown, no flush
    key = receiver.arrivals[0].headers["Idempotency-Key"]
    receiver.failing = False

    daemon = lb.start()
    daemon.wait_for(r"alert state restored: 1 alerts, 0 silences, 1 notices resumed")
    receiver.wait_for(1)
    lb.wait_metric("lightbulb_notifications_delivered_total", 1, channel="ops-hook")
    lb.wait_checks(5)
    seen = [(a.status, a.headers["Idempotency-Key"]) for a in receiver.arrivals]
    assert [s for s, _ in seen if s == 200] == [200], (seen, daemon.output)
    assert {k for _, k in seen} == {key}, (seen, daemon.output)
    alert = lb.alert()
    assert alert is not None
    assert (alert["state"], alert["acknowledged_by"], alert["notified"]) == ("firing", "ops", True)
    (delivery,) = alert["delivery"]
    # attempts carry over (a retry's row may be lost to the kill: only its count, then)
    assert delivery["state"] == "delivered" and delivery["attempts"] >= 2
    daemon.stop()


def test_a_webhook_that_cannot_be_reached_shows_as_retrying_then_failed_and_falls_back(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    channels = (
        f'  ops-hook: {{type: webhook, url: "http://127.0.0.1:{refused_port()}/hook"}}\n'
        f'  backup: {{type: webhook, url: "{receiver.url}/backup"}}'
    )
    lb = Lightbulb(tmp_path, worker, channels,
                   "{group_wait: 0s, retry_backoff: 200ms, retry_max_backoff: 500ms, "
                   "delivery_deadline: 4s, fallback_channels: [backup]}")  # fmt: skip
    daemon = lb.start()
    worker.kill()
    lb.wait_metric("lightbulb_notifications_retrying", 1, channel="ops-hook")
    alert = lb.alert()
    assert alert is not None and alert["notified"] is False
    (delivery,) = alert["delivery"]
    assert (delivery["state"], delivery["channel"]) == ("retrying", "ops-hook")
    assert "cannot reach" in delivery["error"]
    page = lb.get("/alerts")
    assert "ops-hook: retrying since" in page and "cannot reach" in page
    assert lb.metric("lightbulb_alert_delivery", alert=f"{RULE}:worker", channel="ops-hook",
                     state="retrying") == 1.0  # fmt: skip
    # past the deadline: given up, and the fallback channel told once
    lb.wait_metric("lightbulb_notifications_failed_total", 1, channel="ops-hook")
    (fallback,) = receiver.wait_for(1)
    assert fallback.json["kind"] == "fallback"
    assert fallback.json["title"].startswith("Not delivered to ops-hook after")
    alert = lb.alert()
    assert alert is not None and alert["notified"] is False
    assert alert["delivery"][0]["state"] == "failed"
    assert "ops-hook: failed past the delivery deadline" in lb.get("/alerts")
    assert alert["delivery"][0]["permanent"] is False
    assert f'data-alert="{RULE}:worker"' in lb.get("/services/worker")
    lb.wait_checks(3)
    assert len(receiver.arrivals) == 1
    daemon.stop()


def test_an_absent_alert_that_fires_and_resolves_at_once_after_a_pause_sends_nothing(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{}")  # the default group_wait
    lb.config.write_text(lb.config.read_text().replace(
        'condition: "status >= FAILED"', 'condition: absent, threshold: 3'))  # fmt: skip
    daemon = lb.start()
    lb.wait_checks(3)
    daemon.signal(signal.SIGSTOP)  # a paused VM, a stuck host: no checks for 2 s
    time.sleep(2.0)  # the length of the pause itself, not a wait for logic
    daemon.signal(signal.SIGCONT)
    lb.wait_checks(5)
    daemon.stop()
    events = lb.events()
    if ("transition", "inactive", "firing", "queued") in events:  # it fired when it woke
        assert ("delivery", "resolved", "resolved", "dropped") in events
    assert receiver.arrivals == []


def test_a_failure_run_carries_over_a_kill_9(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{group_wait: 0s}")
    lb.config.write_text(lb.config.read_text().replace(
        'condition: "status >= FAILED"', 'condition: "consecutive_failures >= 4"'))  # fmt: skip
    daemon = lb.start()
    worker.kill()
    start = lb.checks()
    assert wait_until(lambda: lb.checks() >= start + 3)  # two or three failures in a row
    daemon.kill()  # kill -9 before the fourth
    assert receiver.arrivals == []

    daemon = lb.start()
    receiver.wait_for(1, seconds=30)
    after = lb.checks()  # checks since the restart when it fired
    # the run went on from the failures before the kill: 1 or 2 more were enough
    # (from zero it would take 4)
    assert after <= 3, (after, daemon.output)
    daemon.stop()


def test_a_firing_whose_deadline_passed_during_a_kill_9_downtime_expires_unsent(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    receiver.failing = True
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{group_wait: 0s, retry_backoff: 100ms, "
                   "retry_max_backoff: 200ms, delivery_deadline: 8s}")  # fmt: skip
    daemon = lb.start()
    worker.kill()
    receiver.wait_arrivals(1)
    daemon.kill()  # SIGKILL while the firing is retrying, well before its deadline
    queued_by = receiver.arrivals[0].at  # monotonic: the notice was queued before this
    assert wait_until(lambda: time.monotonic() > queued_by + 8, 20)  # the downtime itself
    receiver.failing = False

    daemon = lb.start()
    daemon.wait_for(r"expired while Lightbulb was stopped")
    daemon.wait_for(r"alert state restored: 1 alerts, 0 silences, 0 notices resumed")
    lb.wait_checks(5)
    assert receiver.requests == [], daemon.output  # not sent late
    assert lb.metric("lightbulb_notifications_expired_total", channel="ops-hook") == 1.0
    alert = lb.alert()
    assert alert is not None and alert["state"] == "firing" and not alert["notified"]
    assert [d["state"] for d in alert["delivery"]] == ["expired"]
    daemon.stop()
