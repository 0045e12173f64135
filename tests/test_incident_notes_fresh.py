"""A dashboard that kept its incidents answers, after every kind of note, what a fresh one does.

The incidents are kept derived without notes and their notes read apart
(:func:`server.web.incidents_view.with_notes`), so a note must never show stale,
missing or out of order on any of the six routes that show notes: ``/status``, its
feed, ``/incidents``, ``/incidents/<id>`` and the two API routes. A fresh dashboard
(nothing kept; the same process's saved notes, as read-your-writes needs) is the
reference. Found by a fresh attacker (atk20): a note's time to the microsecond
until a restart, a cleared note moving the feed's order and not the page's, an
incident page reading its notes at every request.

The site (tests.support.incident_site, real chDB, recorder and alert engine): a
grouped incident 14 days ago (db the cause, api and web its dependants), then 60
short incidents of web, so more than the status page's 50 are newer than it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.analytics.incidents import Incidents, incident_id
from server.web import WebContext, create_app
from tests.support.incident_site import NOW, TOKEN, Site, entries, sections

NOTE_COLUMNS = ("incident_id", "note", "author", "updated_at")
DURATION = re.compile(r"\d+[smhd]( \d+[smhd])*")


class Held:
    """The daemon writer's stand-in: rows kept until :meth:`insert` (its next insert)."""

    def __init__(self, site: Site) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.site = site

    def add_durable(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.rows += rows

    def insert(self) -> None:
        self.site.store.insert("incident_notes", NOTE_COLUMNS, self.rows)
        self.rows = []


class World:
    def __init__(self, root: Path) -> None:
        self.site = Site(root, step=timedelta(minutes=30), start=NOW - timedelta(days=14))
        self.site.play({"db": "..xxxx....", "api": "...xxx....", "web": "...xxx...."})
        self.site.play({"web": "x........." * 60, "api": "." * 600, "db": "." * 600})
        self.held = Held(self.site)
        self.ctx = WebContext(self.site.config(), self.site.store, self.site.h.clock,
                              self.site.h.engine, sink=self.held)  # fmt: skip
        self.c = create_app(self.ctx).test_client()
        now = self.site.h.clock.now()
        found = Incidents(self.site.store, self.ctx.config).between(
            now - timedelta(days=30), now + timedelta(seconds=1))  # fmt: skip
        self.ids = [i.id for i in found]
        # the status page's id of the grouped one: its first shown member's (api, not db)
        self.old_shown = incident_id(next(m for m in found[-1].members if m.service_id == "api"))

    def fresh(self) -> FlaskClient:
        ctx = WebContext(self.ctx.config, self.site.store, self.site.h.clock, self.site.h.engine,
                         sink=self.held, saved_notes=self.ctx.saved_notes)  # fmt: skip
        return create_app(ctx).test_client()

    def view(self, c: FlaskClient, ids: list[str]) -> dict[str, Any]:
        """What each route shows of the incidents (and of ``ids`` one by one)."""
        out: dict[str, Any] = {
            "status": sections(c.get("/status").get_data(as_text=True)),
            "feed": entries(c),
            "api": c.get("/api/v1/incidents?limit=1000").get_json(),
            # durations follow the clock to the second: not what is compared here
            "page": re.sub(DURATION, "", c.get("/incidents").get_data(as_text=True)),
        }  # fmt: skip
        for iid in ids:
            one = c.get(f"/api/v1/incidents/{iid}")
            out[f"api {iid}"] = one.get_json() if one.status_code == 200 else one.status_code
            page = c.get(f"/incidents/{iid}").get_data(as_text=True)
            out[f"page {iid}"] = re.findall(r'<section class="note">.*?</section>', page, re.S)
        return out

    def same_as_fresh(self, ids: list[str]) -> None:
        kept, fresh = self.view(self.c, ids), self.view(self.fresh(), ids)
        assert [k for k in kept if kept[k] != fresh[k]] == []

    def note(self, iid: str, text: str) -> None:
        saved = self.c.post(f"/api/v1/incidents/{iid}/note", json={"note": text}, headers=TOKEN)
        assert saved.status_code == 200, saved.get_data(as_text=True)

    def status_ids(self) -> list[str]:
        return re.findall(r'id="incident-([^"]+)"', self.c.get("/status").get_data(as_text=True))


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.site.store.close()


def test_notes_saved_inserted_cleared_and_on_members_show_as_on_a_fresh_dashboard(
    w: World,
) -> None:
    old = w.ids[-1]  # the grouped incident, 14 days back, 60 newer ones
    check = w.ids[:2] + w.ids[-2:]
    assert len(w.ids) == 61 and w.old_shown not in w.status_ids()
    w.same_as_fresh(check)
    w.note(old, "root cause: db disk")  # saved, not yet inserted: read-your-writes
    assert w.status_ids()[0] == w.old_shown
    w.same_as_fresh(check)
    w.held.insert()
    w.same_as_fresh(check)
    for k in range(3):  # in quick succession, each read back at once
        w.note(old, f"update {k}")
        assert w.c.get(f"/api/v1/incidents/{old}").get_json()["note"] == f"update {k}"
    w.same_as_fresh(check)
    w.note(old, "")  # cleared
    w.held.insert()
    w.same_as_fresh(check)
    # stored by another dashboard under a member's id, a second later (the saves above
    # were stamped 1 ms apart from the same instant); and under ids of no incident
    now = w.site.h.clock.advance(1)
    found = Incidents(w.site.store, w.ctx.config).get(old, now)
    assert found is not None and len(found.members) == 3
    member = incident_id(found.members[1])
    w.site.store.insert("incident_notes", NOTE_COLUMNS, [
        (member, "from the other dashboard", "ops", now),
        ("20261101T000000000Z-deadbeef", "on nothing", "ops", now),
        ("nope", "on nothing", "ops", now)])  # fmt: skip
    assert w.c.get(f"/api/v1/incidents/{old}").get_json()["note"] == "from the other dashboard"
    w.same_as_fresh([*check, member])


def test_a_note_time_is_the_same_on_a_fresh_dashboard(w: World) -> None:
    """A save is stamped to the ms, as stored: the dashboard that saved it and one
    started after it (a restart) say the same time."""
    iid = w.ids[4]
    w.site.h.clock.advance(0.0006)
    w.note(iid, "x")
    w.held.insert()
    kept = w.c.get(f"/api/v1/incidents/{iid}").get_json()["note_updated_at"]
    fresh = create_app(WebContext(w.ctx.config, w.site.store, w.site.h.clock, w.site.h.engine))
    assert fresh.test_client().get(f"/api/v1/incidents/{iid}").get_json()["note_updated_at"] == kept
    assert kept.endswith(".000+00:00") or "." not in kept.split("T")[1]


def test_a_cleared_note_moves_an_incident_alike_on_the_page_and_the_feed(w: World) -> None:
    """Clearing a note is a change (the feed's ``updated`` moves): the page ranks the
    incident first as the feed does, and both keep an old one a clearing brought in."""

    def urns(ids: list[str]) -> list[str]:
        return [uuid.uuid5(uuid.NAMESPACE_URL, f"lightbulb:incident:{i}").urn for i in ids]

    middle, old = w.ids[20], w.ids[-1]
    w.note(middle, "a deploy")
    w.site.h.clock.advance(60)
    w.note(middle, "")
    page = w.status_ids()
    assert page[0] == middle and urns(page) == [e["id"] for e in entries(w.c)]
    w.note(old, "root cause")
    w.site.h.clock.advance(60)
    w.note(old, "")
    page = w.status_ids()
    assert page[0] == w.old_shown and urns(page) == [e["id"] for e in entries(w.c)]
    w.same_as_fresh([middle, old])


def test_an_incident_page_keeps_its_notes_between_requests(w: World) -> None:
    iid = w.ids[0]
    for _ in range(3):
        w.c.get(f"/incidents/{iid}")
    kept = w.ctx.read_cache
    assert (kept.computed["incident, notes"], kept.reused["incident, notes"]) == (1, 2)
    w.note(iid, "looking")  # its answer read the incident (kept); then a save: read again, once
    for _ in range(2):
        assert "looking" in w.c.get(f"/incidents/{iid}").get_data(as_text=True)
    assert (kept.computed["incident, notes"], kept.reused["incident, notes"]) == (2, 4)
