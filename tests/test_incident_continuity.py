"""A service's outage is one incident whatever happens to its rules while it fails.

Real chDB, the real recorder feeding the real alert engine (tests.support.incident_site:
api depends on db, web on api), reloaded as a SIGHUP reloads it. To the engine a
renamed rule is a new alert (the old one retired at the reload, the new one firing at
the next check), and so is the alert of a service disabled and enabled again; to the
service it is the same run of FAILED. The incident must go on: not "recovered" on
/status or the feed while the service fails, not a second ongoing incident, the note
kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.recorder import Recorder
from tests.support.incident_site import TOKEN, Site, entries, sections

RULES = """
alert_rules:
  - {id: r-db, service: db, condition: "status >= FAILED", channels: [hook]}
  - {id: r-api, service: api, condition: "status >= FAILED", channels: [hook]}
  - {id: r-web, service: web, condition: "status >= FAILED", channels: [hook]}
"""
RENAMED = (
    RULES.replace("id: r-db,", "id: r-db2,")
    .replace("id: r-web,", "id: r-web2,")
    .replace("id: r-api,", "id: r-api2,")
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, RULES, shown=["api", "web"])
    yield s
    s.close()


@pytest.mark.parametrize(
    ("failing", "services"),
    [(["db", "api"], ["db", "api"]),  # the hidden cause's rule and its dependant's
     (["web"], ["web"])],  # a shown service failing alone
)  # fmt: skip
def test_renaming_the_rules_of_failing_services_keeps_their_incident_going_on(
    site: Site, failing: list[str], services: list[str]
) -> None:
    s = site
    s.play({sid: ".xx" if sid in failing else "..." for sid in ("db", "api", "web")})
    (incident,) = s.incidents()
    assert incident.services == services
    c = s.client()
    c.put(f"/api/v1/incidents/{incident.id}/note", json={"note": "On it."}, headers=TOKEN)
    (entry,) = entries(c)
    assert entry["title"].startswith("Ongoing")

    s.reload(RENAMED)  # every rule renamed in one reload: each service still fails
    s.play({sid: "xxx" if sid in failing else "..." for sid in ("db", "api", "web")})
    (found,) = s.incidents()  # no second incident
    assert found.id == incident.id and found.end is None
    assert [(sp.service_id, sp.end) for sp in found.spells()] == [(sid, None) for sid in services]
    assert {m.rule_id for m in found.members} == {
        f"r-{sid}{n}" for sid in services for n in ("", "2")}  # fmt: skip
    shown = sections(c.get("/status").get_data(as_text=True))
    assert "recovered" not in shown and "resolved" not in shown and "On it." in shown
    assert shown.count('class="incident open"') == 1
    assert [(e["id"], e["title"]) for e in entries(c)] == [(entry["id"], entry["title"])]

    s.play(dict.fromkeys(("db", "api", "web"), "..."))  # back: now the same one ends
    (ended,) = s.incidents()
    assert ended.id == incident.id and ended.end is not None
    assert entries(c)[0]["title"].startswith("Resolved")


def test_a_failing_service_disabled_and_enabled_again_rejoins_its_incident_with_its_note(
    site: Site,
) -> None:
    """Decided: while disabled, nothing checks it, so its incident ends when its alert is
    retired (the disable) and is off the page (a disabled service is not shown); enabled
    again and still failing (no check came back up in between), it goes on in the same
    incident, the note with it."""
    s = site
    s.play({"web": ".xx"})
    (incident,) = s.incidents()
    c = s.client()
    c.put(f"/api/v1/incidents/{incident.id}/note", json={"note": "Disk full."}, headers=TOKEN)

    s.reload(RULES, disabled="web")
    s.play({"db": "..", "api": ".."})  # web not checked
    (ended,) = s.incidents()
    assert ended.id == incident.id and ended.end is not None
    off = s.client()  # the page as the daemon serves it now: web disabled
    assert "data-incident" not in sections(off.get("/status").get_data(as_text=True))

    s.reload(RULES)
    s.play({"web": "xx"})
    (again,) = s.incidents()
    assert again.id == incident.id and again.end is None
    assert [(sp.service_id, sp.end) for sp in again.spells()] == [("web", None)]
    c = s.client()
    (current,) = re.findall(r'<article class="incident open".*?</article>',
                            sections(c.get("/status").get_data(as_text=True)), re.S)  # fmt: skip
    assert "Disk full." in current and "recovered" not in current
    (entry,) = entries(c)
    assert entry["title"] == "Ongoing: web" and "Disk full." in entry["summary"]


SOFT = """
alert_rules:
  - {id: web-soft, service: web, condition: "status >= DEGRADED", channels: [hook]}
"""


def test_a_rule_firing_on_degraded_renamed_while_degraded_keeps_one_incident(
    tmp_path: Path,
) -> None:
    """Web degrades, fails, degrades again (never OK between): one firing of a rule on
    DEGRADED. Renamed while web is degraded, the new rule fires at the next check: to
    web it is the same run of not-OK checks, so the same incident goes on, and ends
    once, when web is OK again."""
    s = Site(tmp_path, SOFT, shown=["web"])
    try:
        s.play({"db": "....", "api": "....", "web": ".dxd"})
        (incident,) = s.incidents()
        s.reload(SOFT.replace("id: web-soft,", "id: web-soft2,"))
        s.play({"db": "...", "api": "...", "web": "dd."})
        (found,) = s.incidents()
        assert (found.id, found.start) == (incident.id, s.at[1])
        assert [m.rule_id for m in found.members] == ["web-soft", "web-soft2"]
        assert found.end == s.at[-1]
        c = s.client()
        assert [e["title"] for e in entries(c)] == ["Resolved: web"]
    finally:
        s.close()


def test_a_failed_run_no_transition_marks_begins_at_its_first_failed_check(
    tmp_path: Path,
) -> None:
    """Web is OK for four checks, then a recorder that never learnt the stored statuses
    (a daemon's first results before storage answered, or whose last rows were still in
    its spool: nothing to compare with) records it FAILED: no transition is written.
    The rule-less run begins at the first FAILED check, not at web's first check."""
    s = Site(tmp_path, "\nalert_rules: []\n", shown=["web"])
    try:
        s.play({"web": "...."})
        s.recorder = Recorder(s.h)  # its first result of web is compared with nothing
        s.play({"web": "xx"})
        assert s.store.query("SELECT count() AS n FROM monitor.service_transitions") == [
            {"n": 0}]  # fmt: skip
        (incident,) = s.incidents()
        assert (incident.start, incident.end) == (s.at[4], None)
        s.play({"web": "x."})  # the recovery is a transition: the run ends there
        (ended,) = s.incidents()
        assert (ended.id, ended.start, ended.end) == (incident.id, s.at[4], s.at[-1])
    finally:
        s.close()
