"""An incident end to end: a real daemon, a real process killed and restarted, a real
loopback receiver; the incident is read back through the daemon's own API.

Waits on the receiver's arrivals and on the daemon's counters and API, never on sleeps.
"""

from __future__ import annotations

import json
import re
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import wait_until
from tests.support.daemon import put_note
from tests.support.receivers import HttpReceiver
from tests.test_daemon import no_leaked_daemons
from tests.test_daemon_alerting import TOKEN, Lightbulb, Worker, hook, worker

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


def test_a_rule_added_by_reload_during_a_rule_less_incident_keeps_its_id_and_note(
    tmp_path: Path, receiver: HttpReceiver, worker: Worker
) -> None:
    """The worker starts with no rule: its failure is a run of FAILED checks, and an
    operator notes it. A SIGHUP adds a rule selecting it while it still fails, and the
    daemon restarts: the incident keeps its id and note, the rule's firing joins it."""
    lb = Lightbulb(tmp_path, worker, hook(receiver), "{group_wait: 100ms}")
    ruled = lb.config.read_text()
    lb.config.write_text(re.sub(r"alert_rules:\n  - .*\n .*\n", "alert_rules: []\n", ruled))
    daemon = lb.start()
    lb.wait_checks(2)
    worker.kill()
    assert wait_until(lambda: [i["open"] for i in incidents(lb)] == [True], 20), incidents(lb)
    (incident,) = incidents(lb)
    assert incident["alerts"] == [] and incident["services"] == ["worker"]
    put_note(lb.port, TOKEN, incident["id"], "Worker restarting.")
    lb.config.write_text(ruled)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("reloaded ")
    assert wait_until(lambda: lb.state() == "firing", 20), lb.alert()
    assert wait_until(lambda: incidents(lb)[0]["alerts"] == ["worker-down:worker"], 20), incidents(
        lb
    )
    worker.start()  # recovers, and fails once more: the rule's alone, no rule-less twin
    assert wait_until(lambda: [i["open"] for i in incidents(lb)] == [False], 20), incidents(lb)
    worker.kill()
    assert wait_until(lambda: len(incidents(lb)) == 2 and incidents(lb)[0]["open"], 20)
    lb.wait_checks(3)
    for restarted in (False, True):
        if restarted:
            assert daemon.stop()[0] == 0, daemon.output
            daemon = lb.start()
        latest, again = incidents(lb)
        assert (again["id"], again["note"], again["open"]) == (
            incident["id"], "Worker restarting.", False,
        ), again  # fmt: skip
        one = json.loads(lb.get(f"/api/v1/incidents/{incident['id']}"))
        assert one["note"] == "Worker restarting." and one["alerts"] == ["worker-down:worker"]
        assert (latest["alerts"], latest["note"]) == (["worker-down:worker"], None)
        assert latest["cause"].startswith("worker-down on worker"), latest  # not a FAILED run
    code, _ = daemon.stop()
    assert code == 0, daemon.output
