"""Incidents keep their ids and notes whatever the alert rules become later.

Real chDB, the real recorder feeding the real alert engine (tests.alerting_harness),
the real coverage rows the daemon writes at start and on each reload
(:func:`server.analytics.rule_coverage.record`). ``web`` starts with no rule: its
runs of FAILED checks are incidents, and operators write notes on them. Then a rule
selecting it is added (during a run), renamed, and removed again; each time the
incidents are read afresh, as after a restart.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incident, Incidents, incident_id
from server.analytics.rule_coverage import changes, coverage, record
from server.config.models import Config
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.web_fixture import NOW, Svc

DB_ONLY = """
alert_rules:
  - {id: db-down, service: db, condition: "status >= FAILED", channels: [hook]}
"""
WEB_RULE = DB_ONLY + '  - {id: web-down, service: web, condition: "status >= FAILED"}\n'
RENAMED = DB_ONLY + '  - {id: web-outage, service: "w*", condition: "status >= FAILED"}\n'
STEP = timedelta(minutes=5)


class Daemon:
    """What ``lightbulb run`` does with these parts: checks feed the recorder and the
    engine, rows reach ClickHouse, a reload reconfigures the engine and records the
    rules' coverage as of its time."""

    def __init__(self, root: Path) -> None:
        self.store = EmbeddedStorage(root / "db", "monitor")
        apply_schema(self.store, Target("monitor"))
        self.h = Harness(DB_ONLY, FakeClock(NOW - timedelta(hours=3)))
        self.recorder = Recorder(self.h, listener=self.h.engine)
        record(self.store, self.h.config, self.h.clock.now())

    def config(self, rules: str) -> Config:
        """The harness's services and channel with ``rules``."""
        return parse_config(_services(self.h) + rules, "test.yaml")

    def reload(self, rules: str) -> None:
        self.h.clock.advance(1)  # not in the very millisecond the daemon started
        config = self.config(rules)
        self.h.engine.configure(config)  # an alert whose rule left is resolved now
        self.h.config = config
        # the daemon records the new coverage after the reconfigure (Daemon._apply), a
        # few ms later: written in the same instant, a split incident went unseen
        self.h.clock.advance(0.004)
        record(self.store, config, self.h.clock.now())

    def checks(self, plan: str) -> None:
        """One check of web per character, ``STEP`` apart: ``.`` OK, ``x`` FAILED."""
        for mark in plan:
            at = self.h.clock.advance(STEP.total_seconds())
            status = Status.FAILED if mark == "x" else Status.OK
            self.recorder.record(Svc("web"), CheckResult(status, f"web {mark}"), at)
            self.h.deliver()
        self.flush()

    def flush(self) -> None:
        self.h.log.sync()
        self.h.insert_into(self.store)

    def incidents(self, rules: str | None = None) -> list[Incident]:
        """Read afresh (nothing kept from earlier reads) under the rules ``rules`` (the
        running ones by default), oldest first."""
        config = self.h.config if rules is None else self.config(rules)
        found = Incidents(self.store, config).between(
            NOW - timedelta(days=1), self.h.clock.now() + timedelta(seconds=1)
        )
        return sorted(found, key=lambda i: i.start)


def _services(h: Harness) -> str:
    url = h.receiver.url + h.path
    return f"""
services:
  - {{id: db, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
  - {{id: api, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
  - {{id: web, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 1}}}}
channels:
  hook: {{type: webhook, url: "{url}/hook"}}
alerting: {{group_wait: 0s}}
"""


def shape(found: list[Incident]) -> list[tuple[Any, ...]]:
    return [(i.id, i.end is None, [m.alert_id for m in i.members if m.rule_id],
             i.note["note"] if i.note else None) for i in found]  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    d = Daemon(tmp_path)
    yield d
    d.store.close()


def test_adding_renaming_and_removing_a_rule_keeps_every_incident_its_id_and_note(
    daemon: Daemon,
) -> None:
    d = daemon
    d.checks(".xx.xx")  # two rule-less runs of FAILED: one over, one going on
    before = d.incidents()
    assert [(i.end is None, i.members[0].rule_id) for i in before] == [(False, ""), (True, "")]
    source = Incidents(d.store, d.h.config)
    for incident, note in zip(before, ["Network blip.", "Looking into it."], strict=True):
        source.save_note(incident.id, note, "ana", d.h.clock.now(), None)
    first, ongoing = (i.id for i in before)

    d.reload(WEB_RULE)  # a rule now selects web, while its second run goes on
    d.checks("x..x.")  # the rule fires on the next check; web recovers; fails once more
    after = d.incidents()
    alert = next(m for i in after for m in i.members if m.rule_id == "web-down")
    assert shape(after) == [
        (first, False, [], "Network blip."),
        # the run the rule caught keeps its id and note; the firing joins it
        (ongoing, False, ["web-down:web"], "Looking into it."),
        # a failure after the reload is the rule's: one incident, no rule-less twin
        (after[2].id, False, ["web-down:web"], None),
    ]
    assert alert.start > before[1].start and after[1].end == alert.end
    assert after[2].members[0].rule_id == "web-down" and len(after[2].members) == 1

    d.reload(RENAMED)  # renamed (and selected by a glob now)
    d.checks("x.")
    renamed = d.incidents()
    assert shape(renamed)[:3] == shape(after)
    assert [m.alert_id for m in renamed[3].members] == ["web-outage:web"]

    d.reload(DB_ONLY)  # removed: web is rule-less again
    d.checks("xx.")
    final = d.incidents()
    assert shape(final)[:4] == shape(renamed)
    assert [(m.rule_id, m.end is not None) for m in final[4].members] == [("", True)]
    # whatever rules a reader runs with, the stored history decides
    for rules in (DB_ONLY, WEB_RULE, RENAMED):
        assert shape(d.incidents(rules)) == shape(final)


def test_each_id_still_opens_its_incident_with_its_note_after_the_rules_change(
    daemon: Daemon,
) -> None:
    d = daemon
    d.checks(".xx.xx")
    before = d.incidents()
    source = Incidents(d.store, d.h.config)
    source.save_note(before[1].id, "Looking into it.", "ana", d.h.clock.now(), None)
    d.reload(WEB_RULE)
    d.checks("x..")
    now = d.h.clock.now()
    for rules in (WEB_RULE, RENAMED, DB_ONLY):
        source = Incidents(d.store, d.config(rules))
        for old in before:
            found = source.get(old.id, now)
            assert found is not None and found.id == old.id, rules
        ongoing = source.get(before[1].id, now)
        assert ongoing is not None and ongoing.note is not None
        assert ongoing.note["note"] == "Looking into it."
        # the firing that joined it opens it too
        joined = [m for m in ongoing.members if m.rule_id]
        assert len(joined) == 1 and joined[0].alert_id == "web-down:web"
        by_member = source.get(incident_id(joined[0]), now)
        assert by_member is not None and by_member.id == before[1].id


def test_a_run_failing_from_the_first_check_stays_an_incident_when_a_rule_comes(
    daemon: Daemon,
) -> None:
    """No transition marks such a run's start (the recorder writes changes only)."""
    d = daemon
    d.checks("xx")
    (fresh,) = d.incidents()
    assert fresh.end is None and fresh.members[0].rule_id == ""
    d.reload(WEB_RULE)
    d.checks("x.")
    (again,) = d.incidents()
    assert again.id == fresh.id and again.end is not None
    assert [m.alert_id for m in again.members if m.rule_id] == ["web-down:web"]


@pytest.mark.parametrize("how", ["reload", "restart"])
def test_a_rule_removed_while_its_service_fails_hands_the_incident_to_the_run(
    daemon: Daemon, how: str
) -> None:
    """Nothing is left to resolve an alert whose rule is gone, so it is resolved when
    the rule leaves; but the service still fails, so the incident goes on as the
    service's run of FAILED from then (no rule covers it now) and ends when the
    service is back, never shown resolved while it fails."""
    d = daemon
    d.reload(WEB_RULE)
    d.checks(".xx")
    (firing,) = d.incidents()
    assert firing.end is None and firing.members[0].alert_id == "web-down:web"
    d.h.clock.advance(60)
    if how == "reload":  # the alert is resolved first, the coverage recorded 4 ms later
        d.reload(DB_ONLY)
        left = d.h.clock.now()
        retired = left - timedelta(milliseconds=4)
        d.h.engine.tick(left)
        d.flush()  # the resolve is stored before anyone reads
    else:
        left = d.h.clock.now()  # a new daemon on the same store, started with the rule gone
        d.h = Harness(DB_ONLY, d.h.clock, storage=d.store)
        d.recorder = Recorder(d.h, listener=d.h.engine)
        d.recorder.anchor({"web": Status.FAILED})  # as the daemon reads it back at start
        record(d.store, d.h.config, left)  # at its start; the restore comes later
        retired = d.h.clock.advance(0.004)
        d.h.engine.restore()
    (going,) = d.incidents()
    assert (going.id, going.end) == (firing.id, None)
    assert [(m.rule_id, m.start, m.end) for m in going.members][1:] == [("", left, None)]
    back = d.h.clock.now() + STEP
    d.checks(".x.")  # a failure after the change, rule-less, is a run of FAILED again
    ended, later = d.incidents()
    assert (ended.id, ended.end) == (firing.id, back)
    assert [(m.alert_id, m.end) for m in ended.members] == [("web-down:web", retired), ("", back)]
    assert [(s.start, s.end) for s in ended.spells()] == [(firing.start, back)]  # one stretch
    assert later.members[0].rule_id == "" and later.end is not None
    events = d.store.query(
        "SELECT to_state, message FROM monitor.alert_events WHERE rule_id = 'web-down' "
        "AND event = 'transition' ORDER BY timestamp"
    )
    assert [e["to_state"] for e in events] == ["firing", "resolved"]
    assert "no longer in the configuration" in events[-1]["message"]


COVERED = """
services:
  - {id: web, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}, stack: shop}
  - {id: api, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}, stack: shop}
  - {id: db, type: tcp, interval: 10s, tcp: {host: 127.0.0.1, port: 1}}
alert_rules:
  - {id: shop-down, service: "stack:shop", condition: "status >= FAILED"}
  - {id: idle, service: "*", condition: "status >= FAILED", enabled: false}
"""


def test_coverage_is_what_enabled_rules_select_and_disabling_a_service_changes_none() -> None:
    """Disabling a service is no rule change: it is not checked, so it starts nothing,
    and a row saying it lost its rule would hand a failing one's outage to a run."""
    config = parse_config(COVERED, "t.yaml")
    assert coverage(config) == {"web": True, "api": True, "db": False}
    off_text = COVERED.replace("stack: shop}", "stack: shop, enabled: false}", 1)
    off = parse_config(off_text.replace("port: 1}}\n", "port: 1}, enabled: false}\n"), "t.yaml")
    assert [s.id for s in off.services if not s.enabled] == ["web", "db"]
    assert changes(coverage(config), off, NOW) == []
    assert changes(coverage(off), config, NOW) == []


HELD = DB_ONLY + '  - {id: web-down, service: web, condition: "status >= FAILED", for: 1h}\n'


@pytest.mark.parametrize("plan", ["xx", ".xx"], ids=["from-first-check", "after-a-change"])
@pytest.mark.parametrize("how", ["reload", "restart"])
def test_a_rule_removed_before_it_fired_leaves_the_failing_service_its_incident(
    daemon: Daemon, plan: str, how: str
) -> None:
    """A rule with ``for: 1h`` selects web while it fails and is removed (or the daemon
    restarted without it) while still pending: nothing fired, and no rule covers web
    now, so its run of FAILED is an incident from the run's start, as a rule-less
    run's is, whatever rule covered it when it began."""
    d = daemon
    d.reload(HELD)
    d.checks(plan)
    assert d.incidents() == []  # pending: the rule's to decide
    began = d.h.clock.now() - STEP * (plan.count("x") - 1)
    if how == "reload":
        d.reload(DB_ONLY)
    else:
        d.h = Harness(DB_ONLY, d.h.clock, storage=d.store)
        d.recorder = Recorder(d.h, listener=d.h.engine)
        d.recorder.anchor({"web": Status.FAILED})
        record(d.store, d.h.config, d.h.clock.advance(1))
        d.h.engine.restore()
    d.checks("xx")
    (going,) = d.incidents()
    assert (going.start, going.end, going.services) == (began, None, ["web"])
    assert [(m.rule_id, m.start, m.end) for m in going.members] == [("", began, None)]
    opened = Incidents(d.store, d.h.config).get(going.id, d.h.clock.now())
    assert opened is not None and (opened.id, opened.start) == (going.id, began)
    d.checks(".")
    (ended,) = d.incidents()
    assert (ended.id, ended.end) == (going.id, d.h.clock.now())
    events = d.store.query("SELECT count() AS n FROM monitor.alert_events "
                           "WHERE rule_id = 'web-down' AND to_state = 'firing'")  # fmt: skip
    assert events[0]["n"] == 0
