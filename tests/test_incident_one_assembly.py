"""An incident reads the same on its own page as on every list, and lists rank by news.

Real chDB, the real recorder feeding the real alert engine (tests.support.incident_site:
api depends on db, web on api). Every test of that harness compares each listed
incident with the one its id (and each member's id) opens (:meth:`Site.incidents`);
these are the inputs that once made them disagree, and the status page's cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.web.incidents_view import recent
from tests.support.incident_site import TOKEN, Site, entries

RULES = """
alert_rules:
  - {id: r-db, service: db, condition: "status >= FAILED", channels: [hook]}
  - {id: r-api, service: api, condition: "status >= FAILED", channels: [hook]}
  - {id: r-web, service: web, condition: "status >= FAILED", channels: [hook]}
"""
WEB_OFF = RULES.replace(
    'web, condition: "status >= FAILED", channels: [hook]}',
    'web, condition: "status >= FAILED", channels: [hook], enabled: false}',
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, RULES, shown=["db", "web"])
    yield s
    s.close()


def test_a_rule_disabled_and_enabled_again_leaves_its_incident_open_on_its_own_page(
    site: Site,
) -> None:
    """web fails with a note; its rule is disabled, then enabled 5 s later, web still
    failing: the incident's own page (API and HTML) says ongoing, as the list does."""
    s = site
    s.play({"web": ".xx"})
    (incident,) = s.incidents()
    c = s.client()
    c.put(f"/api/v1/incidents/{incident.id}/note", json={"note": "Port closed."}, headers=TOKEN)
    s.reload(WEB_OFF)
    s.h.clock.advance(4)
    s.reload(RULES)
    s.play({"web": "xx"})
    (again,) = s.incidents()  # also: get(id) is the listed one
    assert again.id == incident.id and again.end is None
    c = s.client()
    listed = c.get("/api/v1/incidents", headers=TOKEN).get_json()["incidents"]
    one = c.get(f"/api/v1/incidents/{incident.id}", headers=TOKEN).get_json()
    assert [(i["id"], i["open"], i["end"]) for i in listed] == [(incident.id, True, None)]
    assert (one["open"], one["end"], one["note"]) == (True, None, "Port closed.")
    told = [e["service_id"] for e in one["timeline"] if e["kind"] == "notice"]
    assert told and set(told) == {"web"}  # whose notice each was, never an empty cell
    page = c.get(f"/incidents/{incident.id}", headers=TOKEN).get_data(as_text=True)
    assert '<span class="badge s2">ongoing</span></h1>' in page
    assert page.index("no longer in the configuration") < page.rindex("inactive -&gt; firing")


def test_a_resolution_is_the_newest_news_however_many_incidents_began_since(
    site: Site,
) -> None:
    """web fails for 19 checks with a note while db has 4 short outages; web resolving
    last is the newest change: first on a list capped at 2, and the feed's first entry."""
    s = site
    s.play({"db": "..x....x....x....x..", "web": "xxxxxxxxxxxxxxxxxxx."})
    found = s.incidents()
    assert [i.services for i in found] == [["web"], ["db"], ["db"], ["db"], ["db"]]
    web = found[0]
    c = s.client()
    c.put(f"/api/v1/incidents/{web.id}/note", json={"note": "Disk swapped."}, headers=TOKEN)
    with c.application.test_request_context("/status"):
        capped = recent(s.h.clock.now(), {"db", "web"}, tokens=None, limit=2)
    assert [i.id for i in capped] == [web.id, found[-1].id]
    first = entries(c)[0]
    assert first["title"] == "Resolved: web" and "Disk swapped." in first["summary"]
