"""Incidents storage: notes durable through the writer; FAILED runs of services without rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incidents
from server.config.models import DashboardConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.validation import parse_config
from server.web import WebContext, create_app
from server.writer import Writer
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.test_incidents import listed
from tests.web_fixture import NOW, RULES, Svc, build

TOKEN = {"Authorization": "Bearer t0ken"}
BEARER = {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}
ATOM = "{http://www.w3.org/2005/Atom}"


def test_a_saved_note_is_on_disk_before_the_answer_and_survives_a_crash(tmp_path: Path) -> None:
    store, h = build(tmp_path)
    config = h.config.model_copy(update={"dashboard": DashboardConfig.model_validate(BEARER)})
    writer = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    c = create_app(WebContext(config, store, h.clock, h.engine, sink=writer)).test_client()
    iid = listed(c)[0]["id"]
    answer = c.post(f"/api/v1/incidents/{iid}/note", json={"note": "kept"}, headers=TOKEN)
    assert answer.status_code == 200 and answer.get_json()["note"] == "kept"
    # the writer never inserted it (its thread never ran): the process dies here
    assert store.query("SELECT count() AS n FROM monitor.incident_notes")[0]["n"] == 0
    reborn = Writer(store, Spool(tmp_path / "spool", 10**8), columns=WRITTEN_TABLES)
    assert reborn.pending_rows() == 1
    reborn.flush()
    assert listed(c)[0]["note"] == "kept"
    store.close()


# -- FAILED runs of services no rule watches --------------------------------------------------
def test_services_without_rules_get_an_incident_per_run_of_failed_checks(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    config = parse_config(
        """
services:
  - {id: watched, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
  - {id: lonely, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/"}
alert_rules:
  - {id: down, service: watched, condition: "status >= FAILED", channels: [hook]}
""",
        "t.yaml",
    )
    h = Harness(RULES, FakeClock(NOW - timedelta(hours=2)))
    recorder = Recorder(h)
    plan = ["OK", "FAILED", "FAILED", "DEGRADED", "FAILED", "OK", "FAILED"]
    for i, name in enumerate(plan):
        at = NOW - timedelta(hours=2) + timedelta(minutes=10 * i)
        for sid in ("watched", "lonely"):
            recorder.record(Svc(sid), CheckResult(Status[name], f"{name.lower()} check"), at)
    for table, columns in WRITTEN_TABLES.items():
        rows = [row for t, row in h.rows if t == table]
        if rows:
            store.insert(table, columns, rows)
    found = Incidents(store, config).between(NOW - timedelta(days=1), NOW)
    spans = [(i.services, i.start, i.end, i.cause) for i in reversed(found)]
    start = NOW - timedelta(hours=2)
    assert spans == [
        (["lonely"], start + timedelta(minutes=10), start + timedelta(minutes=30),
         "lonely: failed check"),
        (["lonely"], start + timedelta(minutes=40), start + timedelta(minutes=50),
         "lonely: failed check"),
        (["lonely"], start + timedelta(minutes=60), None, "lonely: failed check"),
    ]  # fmt: skip
    store.close()


def test_a_service_without_rules_failing_from_its_first_check_is_an_incident_while_open(
    tmp_path: Path,
) -> None:
    """No transition into FAILED is written for a first check: the run is still an
    incident, open from that check (``fresh``), or closed at the first recovery
    (``healed``, which then fails again: a second incident)."""
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    config = parse_config(
        """
services:
  - {id: fresh, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
  - {id: healed, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
  - {id: fine, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
""",
        "t.yaml",
    )
    h = Harness(RULES, FakeClock(NOW - timedelta(hours=2)))
    recorder = Recorder(h)
    start = NOW - timedelta(hours=2)
    plans = {"fresh": ["FAILED"] * 5, "healed": ["FAILED", "FAILED", "OK", "FAILED", "FAILED"],
             "fine": ["OK"] * 5}  # fmt: skip
    for i in range(5):
        for sid, plan in plans.items():
            at = start + timedelta(minutes=10 * i)
            recorder.record(Svc(sid), CheckResult(Status[plan[i]], f"{sid} {i}"), at)
    for table, columns in WRITTEN_TABLES.items():
        rows = [row for t, row in h.rows if t == table]
        if rows:
            store.insert(table, columns, rows)
    source = Incidents(store, config)
    found = source.between(NOW - timedelta(days=1), NOW)
    spans = sorted((i.services, i.start, i.end, i.cause) for i in found)
    assert spans == [
        (["fresh"], start, None, "fresh: fresh 0"),
        (["healed"], start, start + timedelta(minutes=20), "healed: healed 0"),
        (["healed"], start + timedelta(minutes=30), None, "healed: healed 3"),
    ]  # fmt: skip
    # open on the status page's list and found by its id
    first = next(i for i in found if i.services == ["fresh"])
    again = source.get(first.id, NOW)
    assert again is not None and (again.start, again.end) == (start, None)
    store.close()
