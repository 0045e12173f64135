"""A service is in one ongoing incident, also when a second rule of it fires inhibited.

Real chDB, the real recorder feeding the real alert engine (tests.alerting_harness:
api depends on db). api has two rules: ``api-soft`` (DEGRADED or worse) fires first,
an incident of its own; then db fails (its rule fires) and api fails: ``api-hard``
fires, inhibited, its cause db. Joining db's incident, it put api in two ongoing
incidents; it joins api's own. An SLO burn is another matter (tests.test_incidents:
a long burn is not the outage that began during it).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incident, Incidents
from server.analytics.rule_coverage import watchers
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.web_fixture import NOW, Svc

TWO_RULES = """
alert_rules:
  - {id: db-down, service: db, condition: "status >= FAILED", channels: [hook]}
  - {id: api-soft, service: api, condition: "status >= DEGRADED", channels: [hook]}
  - {id: api-hard, service: api, condition: "status >= FAILED", channels: [hook]}
"""


def members(incident: Incident) -> list[str]:
    return [m.alert_id or m.key for m in incident.members]


def test_a_second_rule_firing_inhibited_joins_its_services_open_incident(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    h = Harness(TWO_RULES, FakeClock(NOW - timedelta(hours=1)))
    recorder = Recorder(h, listener=h.engine)
    plan = {"db": "..xxx", "api": ".dxxx"}  # d: DEGRADED
    names = {".": Status.OK, "d": Status.DEGRADED, "x": Status.FAILED}
    for i in range(len(plan["db"])):
        at = h.clock.advance(60)
        for sid in ("db", "api"):  # the cause first, as a daemon's tick may
            recorder.record(Svc(sid), CheckResult(names[plan[sid][i]], f"{sid} {i}"), at)
        h.deliver()
    h.clock.advance(1)
    h.log.sync()
    h.insert_into(store)
    hard = store.query(
        "SELECT caused_by FROM monitor.alert_events WHERE rule_id = 'api-hard' "
        "AND event = 'transition' AND to_state = 'firing'"
    )
    assert [e["caused_by"] for e in hard] == ["db"]  # inhibited: its cause named
    assert watchers(h.config) == {"db": 1, "api": 2, "web": 0}

    source = Incidents(store, h.config)
    found = source.between(NOW - timedelta(days=1), h.clock.now())
    shapes = sorted((members(i), i.end is None) for i in found)
    assert shapes == [(["api-soft:api", "api-hard:api"], True), (["db-down:db"], True)]
    assert [i for i in found if "api" in i.services and i.end is None] == [
        i for i in found if i.root.service_id == "api"]  # fmt: skip
    # a page of one reads whole incidents: the same members whatever the limit
    (first,) = source.between(NOW - timedelta(days=1), h.clock.now(), limit=1)
    assert (first.id, members(first)) == (found[0].id, members(found[0]))
    store.close()
