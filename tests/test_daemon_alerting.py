"""Alerting end to end: a real daemon, a real process killed, a real webhook receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess
from tests.support.receivers import HttpReceiver
from tests.test_daemon import WORKER, no_leaked_daemons, query, write_config

__all__ = ["no_leaked_daemons"]  # the autouse fixture, shared


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.close()


def start_worker(tag: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, tag])


def test_a_killed_process_is_notified_once_across_a_restart_and_its_recovery_once(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    tag = f"lb-alert-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    alerting = f"""channels:
  ops-hook: {{type: webhook, url: "{receiver.url}/hook"}}
alert_rules:
  - {{id: worker-down, service: worker, condition: "status >= FAILED", severity: critical,
     channels: [ops-hook]}}
alerting: {{group_wait: 100ms}}
"""
    services = (
        f"  - {{id: worker, type: python_process, interval: 300ms,"
        f" python_process: {{cmdline: {tag}}}}}\n"
    )
    config = write_config(tmp_path, services, extra=alerting, port=port)
    proc = start_worker(tag)
    try:
        daemon = DaemonProcess(config, tmp_path)
        daemon.wait_for("storage ready")
        daemon.wait_for("dashboard and API", seconds=5)
        proc.kill()
        proc.wait()
        firing = receiver.wait_for(1)[0].json
        assert (firing["status"], firing["alerts"][0]["service_id"]) == ("firing", "worker")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts") as response:
            alerts = json.load(response)["alerts"]
        assert [(a["id"], a["state"]) for a in alerts] == [("worker-down:worker", "firing")]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as response:
            assert json.load(response) == {"status": "ready", "storage": True, "scheduler": True}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            exposition = response.read().decode()
        assert (
            'lightbulb_service_status{service="worker",stack="default",type="python_process"} 2.0'
            in exposition
        )
        assert "lightbulb_alerts_firing 1.0" in exposition
        assert 'lightbulb_check_duration_seconds{service="worker"}' in exposition
        code, _ = daemon.stop()
        assert code == 0, daemon.output

        daemon = DaemonProcess(config, tmp_path)
        daemon.wait_for("alert state restored: 1 alerts")
        daemon.wait_for("storage ready")
        # several failing checks after the restart: receivers were already told
        assert not wait_until(lambda: len(receiver.requests) > 1, seconds=1.5), daemon.output
        proc = start_worker(tag)
        resolved = receiver.wait_for(2)[1].json
        assert resolved["status"] == "resolved"
        assert not wait_until(lambda: len(receiver.requests) > 2, seconds=1)
        code, _ = daemon.stop()
        assert code == 0, daemon.output
    finally:
        proc.kill()
        proc.wait()
    events = query(
        tmp_path,
        "SELECT event, from_state, to_state, delivery_result FROM monitor.alert_events "
        "ORDER BY timestamp",
    )
    assert [tuple(e.values()) for e in events] == [
        ("transition", "inactive", "firing", "queued"),
        ("delivery", "firing", "firing", "sent"),
        ("transition", "firing", "resolved", "queued"),
        ("delivery", "resolved", "resolved", "sent"),
    ]
