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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckResult, Status
from server.analytics.incidents import Incidents
from server.config.models import Config, DashboardConfig, StatusPageConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from server.web.charts import utc
from server.web.status_view import listed
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.test_status_recovered import entries, sections
from tests.web_fixture import NOW, RULES, Svc

ATOM = "{http://www.w3.org/2005/Atom}"
TOKEN = {"Authorization": "Bearer t0ken"}
STEP = timedelta(minutes=5)
# one character per check, STEP apart: "." OK, "x" FAILED
PLAN = {"db": "..xxxxxxxxx", "api": "...xx..xxxx", "web": "....xxxxxxx"}


class Site:
    def __init__(self, root: Path) -> None:
        self.store = EmbeddedStorage(root / "db", "monitor")
        apply_schema(self.store, Target("monitor"))
        self.h = Harness(RULES, FakeClock(NOW - timedelta(hours=2)))
        self.recorder = Recorder(self.h, listener=self.h.engine)
        self.at: list[datetime] = []
        for i in range(len(PLAN["db"])):
            at = self.h.clock.advance(STEP.total_seconds())
            self.at.append(at)
            for sid in ("db", "api", "web"):
                status = Status.FAILED if PLAN[sid][i] == "x" else Status.OK
                self.recorder.record(Svc(sid), CheckResult(status, f"{sid} {i}"), at)
            self.h.deliver()
        self.h.clock.advance(1)
        self.h.log.sync()
        self.h.insert_into(self.store)

    def config(self, disabled: str = "") -> Config:
        services = [s.model_copy(update={"enabled": False}) if s.id == disabled else s
                    for s in self.h.config.services]  # fmt: skip
        return self.h.config.model_copy(update={
            "services": services,
            "status_page": StatusPageConfig.model_validate(
                {"groups": [{"name": "Front", "services": ["api", "web"]}]}),
            "dashboard": DashboardConfig.model_validate(
                {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}),
        })  # fmt: skip

    def client(self, disabled: str = "") -> FlaskClient:
        app = create_app(WebContext(self.config(disabled), self.store, self.h.clock,
                                    self.h.engine))  # fmt: skip
        return app.test_client()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.store.close()


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


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
