"""A service that leaves and rejoins an incident, a shown service disabled for a while,
and a period in the future.

Real chDB, the real recorder feeding the real alert engine (tests.alerting_harness:
api depends on db, web on api; one rule for every service). db, not on the status
page, fails and keeps failing; api fails (inhibited: it joins db's incident), is up
for two checks, and fails again (it rejoins); web fails after api and keeps failing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.analytics.incidents import Incidents
from server.validation import parse_config
from server.web.charts import utc
from server.web.status_view import listed
from tests.support.incident_site import NOW, TOKEN, Site, entries, sections, stamp
from tests.web_fixture import RULES

# one character per check, five minutes apart: "." OK, "x" FAILED
PLAN = {"db": "..xxxxxxxxx", "api": "...xx..xxxx", "web": "....xxxxxxx"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    s.play(PLAN)
    yield s
    s.close()


def test_a_member_that_left_and_rejoined_has_each_part_apart_and_is_not_shown_recovered(
    site: Site,
) -> None:
    s, at = site, site.at
    (incident,) = Incidents(s.store, s.config()).between(NOW - timedelta(days=1), at[-1])
    assert incident.services == ["db", "api", "web"] and incident.end is None
    api = [(sp.start, sp.end) for sp in incident.spells() if sp.service_id == "api"]
    assert api == [(at[3], at[5]), (at[7], None)]  # the up time between is no part of it
    c = s.client()
    (current,) = re.findall(r'<article class="incident open".*?</article>',
                            sections(c.get("/status").get_data(as_text=True)), re.S)  # fmt: skip
    assert "recovered" not in current  # api is failing again
    assert f"api: {utc(at[3])} to {utc(at[5])}" in current
    assert f"api: since {utc(at[7])}" in current
    heading = re.search(r"<h3>(.*?)</h3>", current, re.S)
    assert heading is not None and re.sub(r"<.*?>", "", heading.group(1)).split() == [
        "ongoing", "api,", "web"]  # fmt: skip
    (entry,) = entries(c)
    assert entry["title"] == "Ongoing: api, web"
    assert f"api: from {stamp(at[3])} to {stamp(at[5])}" in entry["summary"]
    assert f"api: from {stamp(at[7])} ongoing" in entry["summary"]
    (row,) = c.get("/api/v1/incidents", headers=TOKEN).get_json()["incidents"]
    assert [(a["service_id"], a["open"]) for a in row["affected"]] == [
        ("db", True), ("api", False), ("api", True), ("web", True)]  # fmt: skip
    listing = c.get("/incidents", headers=TOKEN).get_data(as_text=True)
    cells = re.findall(r"<td>(<a href=\"[^\"]*/services/.*?)</td>", listing, re.S)
    assert [re.sub(r"<.*?>", "", cell) for cell in cells] == ["db, api, web"]


def test_disabling_a_shown_service_for_a_while_moves_no_public_id(site: Site) -> None:
    """The page's id of an incident is its first shown member's; with api disabled, web's
    would be first, and the feed's entry id would change and change back."""
    s = site

    def public(c: FlaskClient) -> tuple[list[str], list[str]]:
        page = sections(c.get("/status").get_data(as_text=True))
        return re.findall(r'data-incident="([^"]+)"', page), [e["id"] for e in entries(c)]

    before = public(s.client())
    assert len(before[0]) == 1 and len(before[1]) == 1
    c = s.client(disabled="api")
    assert public(c) == before
    assert "api" not in sections(c.get("/status").get_data(as_text=True))  # not shown
    assert entries(c)[0]["title"] == "Ongoing: web"
    assert public(s.client()) == before
    one = c.get(f"/api/v1/incidents/{before[0][0]}", headers=TOKEN).get_json()
    assert one["services"] == ["db", "api", "web"]  # it still opens the incident


def test_a_period_in_the_future_holds_no_incident_not_even_an_ongoing_one(site: Site) -> None:
    c = site.client()
    now = c.get("/api/v1/incidents", headers=TOKEN).get_json()["incidents"]
    assert [i["open"] for i in now] == [True]
    for query in ("from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z",
                  f"from={stamp(site.h.clock.now() + timedelta(minutes=1))}"
                  f"&to={stamp(site.h.clock.now() + timedelta(days=1))}"):  # fmt: skip
        answer: dict[str, Any] = c.get(f"/api/v1/incidents?{query}", headers=TOKEN).get_json()
        assert answer["incidents"] == [], query
        page = c.get(f"/incidents?{query}", headers=TOKEN).get_data(as_text=True)
        assert "data-incident=" not in page and "No incidents in this range." in page
    # a period that reaches now holds it
    since = stamp(site.h.clock.now() - timedelta(minutes=1))
    answer = c.get(f"/api/v1/incidents?from={since}", headers=TOKEN).get_json()
    assert [i["id"] for i in answer["incidents"]] == [i["id"] for i in now]


def test_services_disabled_are_still_selected_for_the_public_id() -> None:
    """:func:`server.web.status_view.listed`: the page's groups, enabled or not."""
    config = parse_config(
        """
services:
  - {id: web, type: tcp, stack: shop, tcp: {host: 127.0.0.1, port: 1}, enabled: false}
  - {id: api, type: tcp, stack: shop, tcp: {host: 127.0.0.1, port: 1}}
  - {id: db, type: tcp, tcp: {host: 127.0.0.1, port: 1}}
status_page: {groups: [{name: Shop, services: ["stack:shop"]}]}
""",
        "t.yaml",
    )
    assert listed(config) == {"web", "api"}


def test_disabling_a_member_that_rejoined_never_moves_the_entry_updated_back(site: Site) -> None:
    """api rejoined at at[7], the newest change of the entry; disabled then (its alert
    retired at the reload), the page shows only web, which began at at[4]: ``updated``
    must stay at or after at[7], moved forward to the disable."""
    s = site
    before = entries(s.client())[0]["updated"]
    assert before == stamp(s.at[7])
    assert entries(s.client(disabled="api"))[0]["updated"] == before  # the page alone
    s.reload(RULES, disabled="api")
    retired = s.h.clock.now()
    s.play({"db": "x", "web": "x"})
    (entry,) = entries(s.client())
    assert entry["title"] == "Ongoing: web" and entry["updated"] == stamp(retired) > before
