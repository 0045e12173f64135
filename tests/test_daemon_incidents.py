"""An incident end to end: a real daemon, a real process killed and restarted, a real
loopback receiver; the incident is read back through the daemon's own API.

Waits on the receiver's arrivals and on the daemon's counters and API, never on sleeps.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import wait_until
from tests.support.receivers import HttpReceiver
from tests.test_daemon import no_leaked_daemons
from tests.test_daemon_alerting import Lightbulb, Worker, hook, worker

__all__ = ["no_leaked_daemons", "worker"]  # fixtures, shared (receiver is conftest's)


def incidents(lb: Lightbulb) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = json.loads(lb.get("/api/v1/incidents"))["incidents"]
    return answer


def near(stamp: str, expected: str) -> bool:
    """Equal to the millisecond storage keeps (the notice carries microseconds)."""
    delta = datetime.fromisoformat(stamp) - datetime.fromisoformat(expected)
    return abs(delta) < timedelta(milliseconds=1)


def test_a_failure_and_its_recovery_are_one_incident_with_its_start_end_and_notices(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{group_wait: 100ms}")
    daemon = lb.start()
    lb.wait_checks(2)  # a first result: the failure is a status transition (OK -> FAILED)
    worker.kill()
    firing = receiver.wait_for(1)[0].json["alerts"][0]
    assert firing["status"] == "firing"
    worker.start()
    resolved = receiver.wait_for(2)[1].json["alerts"][0]
    assert resolved["status"] == "resolved"
    lb.wait_metric("lightbulb_notifications_delivered_total", 2, channel="ops-hook")
    # the delivery rows reach ClickHouse within the writer's flush interval
    assert wait_until(
        lambda: [(i["open"], i["notifications_sent"]) for i in incidents(lb)] == [(False, 2)], 20
    ), incidents(lb)
    lb.wait_checks(3)  # a few more healthy checks: nothing new may appear
    (incident,) = incidents(lb)
    assert incident["services"] == ["worker"] and incident["alerts"] == ["worker-down:worker"]
    assert near(incident["start"], firing["started_at"]), (incident, firing)
    assert near(incident["end"], resolved["since"]), (incident, resolved)
    assert incident["notifications_sent"] == 2 and incident["notifications_failed"] == 0
    one = json.loads(lb.get(f"/api/v1/incidents/{incident['id']}"))
    notices = [
        (e["text"].split(" ")[0], e["state"]) for e in one["timeline"] if e["kind"] == "notice"
    ]
    assert notices == [("firing", "delivered"), ("resolved", "delivered")]
    statuses = [e["text"].split(":")[0] for e in one["timeline"] if e["kind"] == "status"]
    assert statuses[0].endswith("-> FAILED") and statuses[-1].startswith("FAILED ->"), one
    page = lb.get(f"/incidents/{incident['id']}")
    assert "worker-down on worker" in page
    assert len(receiver.arrivals) == 2
    code, _ = daemon.stop()
    assert code == 0, daemon.output
