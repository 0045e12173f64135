"""A service back up is never shown as down because a hidden cause still fires.

Real chDB, the real recorder feeding the real alert engine (tests.alerting_harness:
api depends on db, web on api; one rule for every service). db, not on the status
page, fails first and keeps failing; api fails a check later (its firing inhibited,
caused by db, so it joins db's incident), web after it (caused by api). api recovers
while db and web still fail; then web recovers too, db still failing.

The public page and feed show api and web with their own times, nothing of db (no
name, no state, not even its start, which the incident's id spells); the dashboard's
incident stays open while db fires, with api and web marked recovered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from server.analytics.incident_timeline import timeline
from server.analytics.incidents import Incidents
from server.web.charts import utc
from tests.support.incident_site import NOW, TOKEN, Site, entries, sections, stamp

# one character per check, five minutes apart: "." OK, "x" FAILED
PLAN = {"db": "..xxxxxxxx", "api": "...xxx....", "web": "....xxx..."}
AFTER = 7  # checks recorded in the first look: api back, web and db still down


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    s.play({sid: line[:AFTER] for sid, line in PLAN.items()})
    yield s
    s.close()


def hidden_traces(s: Site) -> list[str]:
    """What would give db away: its id, its start in every format the page or feed use
    (the incident's own id spells it too)."""
    db_start = s.at[2]
    return ["db", utc(db_start), stamp(db_start), f"{db_start:%Y%m%dT%H%M%S}"]


def test_a_dependant_back_up_is_shown_recovered_while_its_hidden_cause_still_fails(
    site: Site,
) -> None:
    s, c = site, site.client()
    api_start, api_end, web_start = s.at[3], s.at[6], s.at[4]
    page = c.get("/status").get_data(as_text=True)
    shown = sections(page)
    assert "Current incidents" in shown  # web is still down
    (current,) = re.findall(r'<article class="incident open".*?</article>', shown, re.S)
    heading = re.search(r"<h3>(.*?)</h3>", current, re.S)
    assert heading is not None and re.sub(r"<.*?>", "", heading.group(1)).split() == [
        "ongoing", "web"]  # fmt: skip
    assert f"since {utc(api_start)}" in current and "recovered: api" in current
    assert f"api: {utc(api_start)} to {utc(api_end)}" in current
    assert f"web: since {utc(web_start)}" in current
    for trace in hidden_traces(s):
        assert trace not in shown, trace
    (entry,) = entries(c)
    assert entry["title"] == "Ongoing: web"
    assert entry["published"] == stamp(api_start)
    assert f"api: from {stamp(api_start)} to {stamp(api_end)}" in entry["summary"]
    assert f"web: from {stamp(web_start)} ongoing" in entry["summary"]
    for trace in hidden_traces(s):
        assert trace not in c.get("/status/feed.atom").get_data(as_text=True), trace

    s.play({sid: line[AFTER:] for sid, line in PLAN.items()})  # web back too; db still failing
    shown = sections(c.get("/status").get_data(as_text=True))
    assert "Current incidents" not in shown and "ongoing" not in shown
    web_end = s.at[7]
    assert f"{utc(api_start)} to {utc(web_end)}" in shown
    (entry,) = entries(c)
    assert entry["title"] == "Resolved: api, web"
    assert f"web: from {stamp(web_start)} to {stamp(web_end)}" in entry["summary"]
    for trace in hidden_traces(s):
        assert trace not in shown + c.get("/status/feed.atom").get_data(as_text=True), trace


def test_the_public_id_opens_the_same_incident_and_a_note_reaches_the_page(site: Site) -> None:
    s, c = site, site.client()
    (incident,) = Incidents(s.store, s.h.config).between(NOW - timedelta(days=1), s.at[-1])
    assert incident.services == ["db", "api", "web"] and incident.end is None
    page = c.get("/status").get_data(as_text=True)
    public = re.findall(r'data-incident="([^"]+)"', page)
    assert public and public[0] != incident.id  # db's start is in the incident's id
    one = c.get(f"/api/v1/incidents/{public[0]}", headers=TOKEN).get_json()
    assert one["id"] == incident.id
    s.h.clock.advance(1)
    saved = c.put(f"/api/v1/incidents/{public[0]}/note", json={"note": "Back soon."},
                  headers=TOKEN)  # fmt: skip
    assert saved.status_code == 200
    assert "Back soon." in sections(c.get("/status").get_data(as_text=True))
    assert "Back soon." in entries(c)[0]["summary"]


def test_the_dashboard_keeps_the_incident_open_but_marks_members_back_up(site: Site) -> None:
    s, c = site, site.client()
    (row,) = c.get("/api/v1/incidents", headers=TOKEN).get_json()["incidents"]
    assert row["open"] is True and row["end"] is None  # db still fires
    affected = {a["service_id"]: (a["start"], a["end"], a["open"]) for a in row["affected"]}
    assert affected == {
        "db": (s.at[2].isoformat(), None, True),
        "api": (s.at[3].isoformat(), s.at[6].isoformat(), False),
        "web": (s.at[4].isoformat(), None, True),
    }
    listing = c.get("/incidents", headers=TOKEN).get_data(as_text=True)
    cells = re.findall(r"<td>(<a href=\"[^\"]*/services/.*?)</td>", listing, re.S)
    assert len(cells) == 1
    text = re.sub(r"<.*?>", "", cells[0])
    assert text == f"db, api (recovered {utc(s.at[6])}), web", text
    page = c.get(f"/incidents/{row['id']}", headers=TOKEN).get_data(as_text=True)
    items = {sid: re.sub(r"<.*?>", "", body) for sid, body in
             re.findall(r'<li data-service="([^"]+)">(.*?)</li>', page, re.S)}  # fmt: skip
    assert items == {
        "db": f"db: since {utc(s.at[2])} (ongoing)",
        "api": f"api: {utc(s.at[3])} to {utc(s.at[6])} (recovered)",
        "web": f"web: since {utc(s.at[4])} (ongoing)",
    }


def test_no_timeline_text_has_an_empty_part(site: Site) -> None:
    """Every entry of the incident's timeline (transitions, inhibited and held firings,
    notices): no "(, caused by db)", "()", "( ", a colon or comma with nothing after."""
    s = site
    s.play({sid: line[AFTER:] for sid, line in PLAN.items()})
    source = Incidents(s.store, s.config())
    (incident,) = source.between(NOW - timedelta(days=1), s.h.clock.now())
    texts = [e["text"] for e in timeline(source, incident, s.h.clock.now())]
    assert any("caused by db" in t for t in texts), texts
    empty = re.compile(r"\(\s*[,;:]|[,;:]\s*\)|\(\s*\)|[,;:]\s*$|\s$|^\s|,\s*,")
    assert [t for t in texts if empty.search(t)] == []
