"""Rules changed by SIGHUP while services fail: a real daemon end to end.

A real ``lightbulb run`` checks three command services (each exits with the code a
state file holds: 0 OK, 2 FAILED) every second; ``hdb`` is hidden from the status
page and both web services depend on it. Rules are added, removed and disabled by
rewriting the file and sending SIGHUP, as an operator does; what the daemon wrote
is read back through its own API, ``/status`` and the Atom feed. Nothing here waits
on a sleep: on the daemon's log, its check counters and its answers.

The faults this pins: a rule removed while its service failed ended the incident at
the reload and opened another (the alert's end and the coverage row are written a
few milliseconds apart by the daemon; a test that wrote them in one instant passed);
a rule added during a rule-less run while a hidden cause fired put the service in
two ongoing incidents, and removing it again showed it recovered while it failed.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess, put_note
from tests.test_daemon import no_leaked_daemons

__all__ = ["no_leaked_daemons"]
TOKEN = "reload-t0ken"
ATOM = "{http://www.w3.org/2005/Atom}"
RETIRED = "no longer in the configuration"
R_HDB = '  - {id: r-hdb, service: hdb, condition: "status >= FAILED"}\n'
R_HDB_OFF = '  - {id: r-hdb, service: hdb, condition: "status >= FAILED", enabled: false}\n'
R_WEB1 = '  - {id: r-web1, service: web1, condition: "status >= FAILED"}\n'
R_WEB2 = '  - {id: r-web2, service: web2, condition: "status >= FAILED"}\n'


class Site:
    """One daemon on ``root`` and the files that steer it."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.state = root / "state"
        self.state.mkdir()
        self.config = root / "lightbulb.yaml"
        self.daemon: DaemonProcess | None = None

    def write(self, rules: str, disabled: str = "") -> None:
        def svc(sid: str, label: str) -> str:
            # the state file's code; "flap": 0 and 2 in turn, one a check
            state, turn = self.state / sid, self.state / f"{sid}.turn"
            script = (f"v=$(cat {state} 2>/dev/null || echo 0); if [ \"$v\" = flap ]; then "
                      f"n=$(cat {turn} 2>/dev/null || echo 0); echo $((n + 1)) > {turn}; "
                      "v=$((n % 2 * 2)); fi; exit $v")  # fmt: skip
            off = ", enabled: false" if sid == disabled else ""
            return (f'  - {{id: {sid}, label: "{label}", type: command, interval: 1s{off}, '
                    f"command: {{command: [sh, -c, {json.dumps(script)}]}}}}\n")  # fmt: skip

        self.config.write_text(
            f"clickhouse: {{embedded_path: {self.root / 'db'}}}\n"
            f"scheduler: {{spool_dir: {self.root / 'spool'}, flush_interval: 200ms, "
            "insert_interval: 200ms}\n"
            f"dashboard: {{port: {self.port}, auth: {{type: bearer, tokens: {{ops: {TOKEN}}}}}}}\n"
            "alerting: {group_wait: 100ms}\n"
            "services:\n" + svc("hdb", "Hidden DB") + svc("web1", "Web One")
            + svc("web2", "Web Two")
            + "relations:\n"
            "  - {source: web1, target: hdb, type: depends_on}\n"
            "  - {source: web2, target: hdb, type: depends_on}\n"
            "status_page: {groups: [{name: Shop, services: [web1, web2]}]}\n"
            "alert_rules:" + (f"\n{rules}" if rules else " []\n")
        )  # fmt: skip

    def start(self, rules: str) -> None:
        self.write(rules)
        self.daemon = DaemonProcess(self.config, self.root)
        self.daemon.wait_for("dashboard and API", seconds=30)

    @property
    def d(self) -> DaemonProcess:
        assert self.daemon is not None
        return self.daemon

    def reload(self, rules: str, disabled: str = "") -> None:
        done = sum(1 for line in self.d.lines if "reloaded " in line)
        self.write(rules, disabled)
        self.d.signal(signal.SIGHUP)
        assert wait_until(lambda: sum("reloaded " in x for x in self.d.lines) > done, 30), (
            self.d.output[-3000:]
        )

    def fail(self, sid: str, failing: bool = True) -> None:
        (self.state / sid).write_text("2" if failing else "0")
        self.d.wait_for_checks(sid, 2)  # the new status is checked and recorded

    def get(self, path: str) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return str(response.read().decode())

    def incidents(self, service: str = "") -> list[dict[str, Any]]:
        query = f"?service={service}" if service else ""
        found: list[dict[str, Any]] = json.loads(self.get(f"/api/v1/incidents{query}"))["incidents"]
        return found

    def note(self, iid: str, text: str) -> None:
        put_note(self.port, TOKEN, iid, text)

    def one(self, iid: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.get(f"/api/v1/incidents/{iid}"))
        return found

    def firing(self, alert: str) -> bool:
        alerts = json.loads(self.get("/api/v1/alerts"))["alerts"]
        return any(a["id"] == alert and a["state"] == "firing" for a in alerts)

    def feed(self) -> list[tuple[str, str]]:
        """(title, id) of each entry of the Atom feed."""
        root = ET.fromstring(self.get("/status/feed.atom"))  # noqa: S314 - our own output
        return [(e.findtext(f"{ATOM}title") or "", e.findtext(f"{ATOM}id") or "")
                for e in root.iter(f"{ATOM}entry")]  # fmt: skip


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    if s.daemon is not None:
        code, _ = s.daemon.stop()
        assert code == 0, s.daemon.output[-3000:]


def open_of(site: Site, service: str) -> list[dict[str, Any]]:
    return [i for i in site.incidents(service) if i["open"]]


def failing(site: Site, rule: str, service: str) -> dict[str, Any]:
    """``service`` made to fail, its alert of ``rule`` firing (None: no rule, a run of
    FAILED) and its incident open; returns that incident."""
    site.d.wait_for_checks(service, 2)
    site.fail(service)
    if rule:
        assert wait_until(lambda: site.firing(f"{rule}:{service}"), 20)
    assert wait_until(lambda: len(open_of(site, service)) == 1, 20), site.incidents()
    (found,) = open_of(site, service)
    return found


def test_a_rule_removed_while_its_service_fails_leaves_its_incident_going_on(
    site: Site,
) -> None:
    site.start(R_HDB + R_WEB1)
    before = failing(site, "r-web1", "web1")

    site.reload(R_HDB)  # r-web1 removed; web1 still fails
    site.d.wait_for_checks("web1", 3)
    assert wait_until(
        lambda: any(RETIRED in e["text"] for e in site.one(before["id"])["timeline"]), 20
    ), site.one(before["id"])  # the timeline says why the alert ended
    found = site.incidents("web1")
    assert [(i["id"], i["open"]) for i in found] == [(before["id"], True)], found
    spells = [(a["service_id"], a["open"]) for a in found[0]["affected"]]
    assert spells == [("web1", True)], found
    page = site.get("/status")
    assert f'id="incident-{before["id"]}"' in page and "recovered" not in page
    assert [title for title, _ in site.feed()] == ["Ongoing: Web One"]

    site.fail("web1", False)  # back: now it is over, the same incident
    assert wait_until(lambda: not open_of(site, "web1"), 20), site.incidents()
    assert [i["id"] for i in site.incidents("web1")] == [before["id"]]
    assert [title for title, _ in site.feed()] == ["Resolved: Web One"]


def test_disabling_a_failing_causes_rule_keeps_its_incident_and_dependant_going_on(
    site: Site,
) -> None:
    site.start(R_HDB + R_WEB1)
    failing(site, "r-hdb", "hdb")
    failing(site, "r-web1", "web1")  # inhibited, caused by hdb: one incident
    (before,) = open_of(site, "hdb")
    assert before["services"] == ["hdb", "web1"], before
    entries = site.feed()

    site.reload(R_HDB_OFF + R_WEB1)  # hdb still fails
    site.d.wait_for_checks("hdb", 3)
    assert wait_until(
        lambda: any(RETIRED in e["text"] for e in site.one(before["id"])["timeline"]), 20
    )
    found = site.incidents("hdb")
    assert [(i["id"], i["open"]) for i in found] == [(before["id"], True)], found
    assert [(a["service_id"], a["open"]) for a in found[0]["affected"]] == [
        ("hdb", True), ("web1", True)]  # fmt: skip
    assert site.feed() == entries  # the public view is unchanged: same entry, ongoing


def test_a_rule_added_during_a_run_while_a_hidden_cause_fires_keeps_one_incident(
    site: Site,
) -> None:
    site.start(R_HDB)
    failing(site, "r-hdb", "hdb")
    run = failing(site, "", "web2")  # no rule: a run of FAILED, its own incident
    assert run["alerts"] == [] and run["services"] == ["web2"], run

    site.reload(R_HDB + R_WEB2)  # it fires at once, inhibited while hdb fires
    assert wait_until(lambda: site.firing("r-web2:web2"), 20)
    assert wait_until(lambda: open_of(site, "web2")[0]["alerts"] == ["r-web2:web2"], 20)
    found = open_of(site, "web2")
    assert [i["id"] for i in found] == [run["id"]], found  # in one ongoing incident
    (cause,) = open_of(site, "hdb")
    assert cause["services"] == ["hdb"], cause
    page = site.get("/status")
    assert page.count('class="incident open"') == 1 and f"incident-{run['id']}" in page
    assert [title for title, _ in site.feed()] == ["Ongoing: Web Two"]

    site.reload(R_HDB)  # removed again, web2 still failing
    site.d.wait_for_checks("web2", 3)
    assert wait_until(
        lambda: any(RETIRED in e["text"] for e in site.one(run["id"])["timeline"]), 20
    )
    found = open_of(site, "web2")
    assert [i["id"] for i in found] == [run["id"]], found
    assert [(a["service_id"], a["open"]) for a in found[0]["affected"]] == [("web2", True)]
    page = site.get("/status")
    assert "recovered" not in page and page.count('class="incident open"') == 1
    assert [title for title, _ in site.feed()] == ["Ongoing: Web Two"]


def test_renaming_the_rules_of_a_failing_service_and_of_a_failing_cause_keeps_both_going(
    site: Site,
) -> None:
    """web1 fails alone; then hdb fails and web2 with it (one incident). One reload
    renames r-web1 and r-hdb: to the engine two new alerts (r-web1x firing inhibited by
    hdb now), to the incidents the same two outages going on."""
    site.start(R_HDB + R_WEB1 + R_WEB2)
    alone = failing(site, "r-web1", "web1")
    cause = failing(site, "r-hdb", "hdb")
    failing(site, "r-web2", "web2")
    assert wait_until(lambda: open_of(site, "hdb")[0]["services"] == ["hdb", "web2"], 20)
    site.note(alone["id"], "Looking at web1.")
    entries = site.feed()
    assert sorted(title for title, _ in entries) == ["Ongoing: Web One", "Ongoing: Web Two"]

    renamed = R_HDB.replace("r-hdb", "r-hdb2") + R_WEB1.replace("r-web1", "r-web1x") + R_WEB2
    site.reload(renamed)
    assert wait_until(lambda: site.firing("r-web1x:web1") and site.firing("r-hdb2:hdb"), 20)
    site.d.wait_for_checks("web1", 3)
    web1, hdb = open_of(site, "web1"), open_of(site, "hdb")
    assert [i["id"] for i in web1] == [alone["id"]], web1  # not a second ongoing one
    assert [i["id"] for i in hdb] == [cause["id"]], hdb
    assert [(a["service_id"], a["open"]) for a in web1[0]["affected"]] == [("web1", True)]
    assert [(a["service_id"], a["open"]) for a in hdb[0]["affected"]] == [
        ("hdb", True), ("web2", True)]  # fmt: skip
    assert sorted(web1[0]["alerts"]) == ["r-web1:web1", "r-web1x:web1"]
    page = site.get("/status")
    assert "recovered" not in page and page.count('class="incident open"') == 2
    assert "Looking at web1." in page
    assert site.feed() == entries  # the same entries, still ongoing


def test_a_failing_service_disabled_and_enabled_again_keeps_its_incident_and_note(
    site: Site,
) -> None:
    """Decided: disabled, nothing checks it (its alert retired, its incident ended then,
    off the page); enabled again while its check still fails, it goes on in the same
    incident, note and all, never shown resolved on the page in between."""
    site.start(R_WEB1)
    before = failing(site, "r-web1", "web1")
    site.note(before["id"], "Disk full on web1.")

    site.reload(R_WEB1, disabled="web1")
    assert wait_until(lambda: not open_of(site, "web1"), 20), site.incidents()
    page = site.get("/status")
    assert "Web One" not in page and "resolved" not in page

    site.reload(R_WEB1)
    assert wait_until(lambda: site.firing("r-web1:web1"), 20)
    site.d.wait_for_checks("web1", 2)
    assert [i["id"] for i in open_of(site, "web1")] == [before["id"]], site.incidents()
    page = site.get("/status")
    assert f'id="incident-{before["id"]}"' in page and "Disk full on web1." in page
    assert [title for title, _ in site.feed()] == ["Ongoing: Web One"]


def test_a_rule_removed_before_it_fired_leaves_its_failing_service_an_incident(
    site: Site,
) -> None:
    """``for: 1h`` never met: the alert is pending when the rule is removed; web1 still
    fails, no rule covers it now, so it has an incident from its run's start, across
    a restart too, and the same one ends when web1 is back."""
    held = '  - {id: r-web1, service: web1, condition: "status >= FAILED", for: 1h}\n'
    site.start(held)
    site.d.wait_for_checks("web1", 2)
    site.fail("web1")
    site.d.wait_for_checks("web1", 2)
    assert open_of(site, "web1") == []  # pending: the rule's to decide
    removed = datetime.now(UTC)
    site.reload("")
    assert wait_until(lambda: len(open_of(site, "web1")) == 1, 20), site.incidents()
    (found,) = site.incidents("web1")
    assert datetime.fromisoformat(found["start"]) < removed, found
    assert found["services"] == ["web1"]

    code, _ = site.d.stop()
    assert code == 0
    site.start("")
    site.d.wait_for_checks("web1", 2)
    assert [(i["id"], i["open"]) for i in site.incidents("web1")] == [(found["id"], True)]

    site.fail("web1", False)
    assert wait_until(lambda: not open_of(site, "web1"), 20), site.incidents()
    assert [i["id"] for i in site.incidents("web1")] == [found["id"]]


def test_a_note_on_an_incident_a_flapping_period_merges_is_kept(site: Site) -> None:
    """Rule-less web2 fails twice (two incidents), its second incident is noted, then
    it fails every other check: the flapping period found on its status changes
    takes the noted incident in, and the note goes with it, by any of its ids."""
    site.start("")
    site.d.wait_for_checks("web2", 2)
    for _ in range(2):
        site.fail("web2")
        site.fail("web2", False)
    assert wait_until(lambda: len(site.incidents("web2")) == 2, 20), site.incidents()
    first, second = sorted(site.incidents("web2"), key=lambda i: i["start"])
    site.note(second["id"], "Bad cable.")
    assert site.one(second["id"])["note"] == "Bad cable."

    (site.state / "web2").write_text("flap")
    assert wait_until(lambda: site.one(second["id"])["id"] != second["id"], 60), site.incidents()
    merged = site.one(second["id"])
    assert merged["open"] and merged["note"] == "Bad cable.", merged
    listed = {i["id"]: i["note"] for i in site.incidents("web2")}
    assert second["id"] not in listed and listed[merged["id"]] == "Bad cable.", listed
    assert site.one(first["id"])["id"] in (first["id"], merged["id"])
