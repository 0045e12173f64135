"""Incidents over real chDB data written by the real recorder and alert engine.

The web fixture's database fails for its last hour and the API, which depends on
it, fails with it (its firing inhibited by the database's): one incident, two
services, one notice delivered at the loopback receiver.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from flask.testing import FlaskClient

from server.analytics.incident_model import Member
from server.analytics.incident_timeline import timeline
from server.analytics.incidents import Incidents, group, id_start, incident_id
from server.config.models import DashboardConfig, SilenceConfig
from server.web import WebContext, create_app
from tests.web_fixture import NOW, build

TOKEN = {"Authorization": "Bearer t0ken"}
BEARER = {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskClient, Any]]:
    store, h = build(tmp_path_factory.mktemp("incidents"))
    config = h.config.model_copy(update={"dashboard": DashboardConfig.model_validate(BEARER)})
    yield create_app(WebContext(config, store, h.clock, h.engine)).test_client(), h
    store.close()


@pytest.fixture
def c(site: tuple[FlaskClient, Any]) -> FlaskClient:
    return site[0]


def listed(c: FlaskClient, query: str = "") -> list[dict[str, Any]]:
    answer = c.get(f"/api/v1/incidents{query}")
    assert answer.status_code == 200, answer.get_json()
    incidents: list[dict[str, Any]] = answer.get_json()["incidents"]
    return incidents


def test_an_outage_and_the_dependant_it_inhibited_are_one_incident(
    site: tuple[FlaskClient, Any],
) -> None:
    c, h = site
    (incident,) = listed(c)
    assert incident["services"] == ["db", "api"]
    assert incident["alerts"] == ["down:db", "down:api"]
    assert incident["cause"] == "down on db: connection refused"
    assert (incident["start"], incident["end"], incident["open"]) == (
        "2026-11-22T11:00:00+00:00", None, True,
    )  # fmt: skip
    assert incident["duration_seconds"] == 3600.0
    # the database's firing reached the hook once; the API's was inhibited, never sent
    assert len([a for a in h.receiver.arrivals if a.path == h.path + "/hook"]) == 1
    assert incident["notifications_sent"] == 1
    assert incident["acknowledged_by"] == []


def test_ids_are_stable_and_name_the_start_and_any_member_finds_its_group(c: FlaskClient) -> None:
    first, again = listed(c)[0]["id"], listed(c, "?range=7d")[0]["id"]
    assert first == again == "20261122T110000000Z-252abfc8"
    assert id_start(first) == NOW - timedelta(hours=1)
    one = c.get(f"/api/v1/incidents/{first}").get_json()
    assert one["id"] == first and one["services"] == ["db", "api"]
    kinds = [(e["kind"], e["service_id"]) for e in one["timeline"]]
    assert ("status", "db") in kinds and ("status", "api") in kinds
    assert [e["state"] for e in one["timeline"] if e["kind"] == "notice"] == ["delivered"]
    held = [e["text"] for e in one["timeline"] if e["kind"] == "alert" and e["service_id"] == "api"]
    assert held == [
        "down inactive -> firing (held back: inhibited, caused by db): upstream db down"
    ]
    source = Incidents(c.application.extensions["lightbulb"].storage,
                       c.application.extensions["lightbulb"].config)  # fmt: skip
    group = source.get(first, NOW)
    assert group is not None
    api_member = incident_id(group.members[1])
    assert api_member != first
    assert c.get(f"/api/v1/incidents/{api_member}").get_json()["id"] == first


def test_the_list_filters_by_service_and_period_and_refuses_bad_input(c: FlaskClient) -> None:
    assert [i["services"] for i in listed(c, "?service=api")] == [["db", "api"]]
    assert listed(c, "?service=web") == []
    assert listed(c, "?from=2026-11-01T00:00:00Z&to=2026-11-22T10:00:00Z") == []
    assert len(listed(c, "?from=2026-11-22T11:30:00Z&to=2026-11-22T11:40:00Z")) == 1
    assert len(listed(c, "?limit=1")) == 1
    assert c.get("/api/v1/incidents?limit=0").status_code == 400
    assert c.get("/api/v1/incidents?limit=x").status_code == 400
    assert c.get("/api/v1/incidents?from=yesterday").status_code == 400
    for bad in ("nope", "20261122T110000000Z-00000000", "29991122T110000000Z-252abfc8"):
        answer = c.get(f"/api/v1/incidents/{bad}")
        assert answer.status_code == 404 and "no incident" in answer.get_json()["error"]
    assert c.get("/incidents/nope").status_code == 404


def test_a_note_needs_a_principal_and_json_and_is_set_changed_and_cleared(c: FlaskClient) -> None:
    iid = listed(c)[0]["id"]
    url = f"/api/v1/incidents/{iid}/note"
    assert c.post(url, json={"note": "x"}).status_code == 401
    assert c.post(url, data="note=x", headers=TOKEN).status_code == 415
    assert c.post(url, json={"note": 3}, headers=TOKEN).status_code == 400
    assert c.post(url, json={"note": "x" * 4001}, headers=TOKEN).status_code == 400
    assert (
        c.post("/api/v1/incidents/nope/note", json={"note": "x"}, headers=TOKEN).status_code == 404
    )
    saved = c.post(url, json={"note": "  Failing over to the replica.  "}, headers=TOKEN)
    assert saved.status_code == 200, saved.get_json()
    assert (saved.get_json()["note"], saved.get_json()["note_author"]) == (
        "Failing over to the replica.", "ops",
    )  # fmt: skip
    assert listed(c)[0]["note"] == "Failing over to the replica."
    c.application.extensions["lightbulb"].clock.advance(1)
    assert c.put(url, json={"note": "Replica serving."}, headers=TOKEN).status_code == 200
    assert c.get(f"/api/v1/incidents/{iid}").get_json()["note"] == "Replica serving."
    c.application.extensions["lightbulb"].clock.advance(1)
    assert c.put(url, json={"note": ""}, headers=TOKEN).get_json()["note"] is None
    assert listed(c)[0]["note"] is None


def test_a_note_form_needs_the_forms_csrf_token(c: FlaskClient) -> None:
    iid = listed(c)[0]["id"]
    answer = c.post(f"/incidents/{iid}/note", data={"note": "x"}, headers=TOKEN)
    assert answer.status_code == 403


def test_status_page_and_feed_show_current_incidents_with_their_notes(c: FlaskClient) -> None:
    iid = listed(c)[0]["id"]
    c.application.extensions["lightbulb"].clock.advance(1)
    c.put(f"/api/v1/incidents/{iid}/note", json={"note": "Investigating."}, headers=TOKEN)
    page = c.get("/status").get_data(as_text=True)
    assert 'id="incident-' + iid in page and "Current incidents" in page
    assert "Investigating." in page and "No incidents in the last 30 days." in page
    feed = c.get("/status/feed.atom")
    assert feed.content_type.startswith("application/atom+xml")
    root = ET.fromstring(feed.data)  # noqa: S314 - our own output
    (entry,) = root.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "Ongoing: db, api"
    assert "Investigating." in (entry.findtext(f"{ATOM}summary") or "")
    assert (entry.findtext(f"{ATOM}id") or "").startswith("urn:uuid:")
    assert "connection refused" not in feed.get_data(as_text=True)  # check output stays private


def test_configured_silences_appear_in_the_timeline_as_runtime_ones_do(
    site: tuple[FlaskClient, Any],
) -> None:
    """``silences:`` from the YAML (a one-off window and a recurring one) covered the
    incident's alerts: both show, each window once, like a silence created through the API;
    one of another service does not."""
    c, h = site
    store = c.application.extensions["lightbulb"].storage
    silences = [
        {"id": "db-maint", "service": "db", "start": "2026-11-22T11:30:00Z",
         "end": "2026-11-22T13:00:00Z", "comment": "disk swap"},
        {"id": "nightly", "service": "stack:default", "rule": "down", "cron": "15 11 * * *",
         "duration": "10m"},
        {"id": "web-only", "service": "web", "start": "2026-11-22T11:00:00Z",
         "end": "2026-11-22T13:00:00Z"},
    ]  # fmt: skip
    config = h.config.model_copy(
        update={"silences": [SilenceConfig.model_validate(s) for s in silences]}
    )
    source = Incidents(store, config)
    (incident,) = source.between(NOW - timedelta(hours=2), NOW, limit=10)
    entries = [(e["at"], e["service_id"], e["text"])
               for e in timeline(source, incident, NOW) if e["kind"] == "silence"]  # fmt: skip
    assert entries == [
        (NOW - timedelta(minutes=45), "db",
         "silenced until 2026-11-22T11:25:00+00:00 by config (configured silence nightly)"),
        (NOW - timedelta(minutes=30), "db", "silenced until 2026-11-22T13:00:00+00:00 by config"
         " (configured silence db-maint): disk swap"),
    ]  # fmt: skip


def test_an_inhibited_firing_joins_the_newest_open_incident_of_its_cause() -> None:
    # the attack: web2's firing (caused by web) joined web's SLO-burn incident, open for
    # 14 minutes, not web's outage that began a second before it
    at = NOW - timedelta(hours=1)
    burn = Member("burn:web@1", "burn", "web", "warning", at, None, "burning")
    down = Member("down:web@2", "down", "web", "critical", at + timedelta(minutes=14), None, "down")
    later = at + timedelta(minutes=14, seconds=1)
    dependant = Member("down:web2@3", "down", "web2", "critical", later, None, "down", "web")
    found = group([dependant, down, burn], burns={"burn"})
    assert [[m.key for m in i.members] for i in found] == [
        ["burn:web@1"], ["down:web@2", "down:web2@3"]]  # fmt: skip
