"""A saved note is what the next read shows (read-your-writes), through the daemon's writer.

Real app, real Writer (write-ahead log in tmp_path) and real chDB. The writer's
inserter never runs during the saves, as when its insert interval has not come
yet: every note is on disk but not in ``incident_notes`` until ``flush()``. The
clock does not move between saves, the worst case for ordering versions.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.security import generate_password_hash

from server.config.models import DashboardConfig
from server.spool import Spool
from server.tables import WRITTEN_TABLES
from server.web import WebContext, create_app
from server.writer import Writer
from tests.web_fixture import build

BASIC = {"type": "basic", "users": {"ana": generate_password_hash("pw")}}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"ana:pw").decode()}
NOTES = ["Investigating.", "Failing over to the replica.", "  Replica serving.\r\nWatching.  ",
         "", "Résolu <b>not bold</b> & done", "Investigating."]  # fmt: skip


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store, self.h = build(root)
        self.config = self.h.config.model_copy(
            update={"dashboard": DashboardConfig.model_validate({"auth": BASIC})}
        )
        self.writer = Writer(self.store, Spool(root / "spool", 10**8), columns=WRITTEN_TABLES)
        self.c = self.app().test_client()

    def app(self) -> Any:
        """A dashboard over the store; a new one knows nothing this one saved."""
        ctx = WebContext(self.config, self.store, self.h.clock, self.h.engine, sink=self.writer)
        return create_app(ctx)

    def stored(self) -> int:
        return int(self.store.query("SELECT count() AS n FROM monitor.incident_notes")[0]["n"])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.store.close()


def expected(note: str) -> str | None:
    text = note.replace("\r\n", "\n").strip()
    return text or None


def shown_on_status(c: FlaskClient) -> list[str]:
    page = c.get("/status").get_data(as_text=True)
    return re.findall(r"<div class=\"note-text\" data-note>(.*?)</div>", page, re.S)


def test_the_api_read_right_after_a_save_shows_that_note_every_time(site: Site) -> None:
    c = site.c
    iid = c.get("/api/v1/incidents").get_json()["incidents"][0]["id"]
    for _ in range(3):
        for note in NOTES:
            saved = c.put(f"/api/v1/incidents/{iid}/note", json={"note": note}, headers=AUTH)
            assert saved.status_code == 200, saved.get_json()
            assert saved.get_json()["note"] == expected(note)
            assert c.get(f"/api/v1/incidents/{iid}").get_json()["note"] == expected(note)
            assert c.get("/api/v1/incidents").get_json()["incidents"][0]["note"] == expected(note)
            want = expected(note)
            assert shown_on_status(c) == ([str(escape(want))] if want else [])
            feed = c.get("/status/feed.atom").get_data(as_text=True)
            assert (want is None) or xml_escape(want) in feed
    assert site.stored() == 0  # all of that was read before the writer inserted a row


def test_versions_saved_in_the_same_instant_are_stored_in_the_order_made(site: Site) -> None:
    """argMax(note, updated_at) leaves ties unordered: each save gets a later time."""
    c = site.c
    iid = c.get("/api/v1/incidents").get_json()["incidents"][0]["id"]
    stamps = []
    for note in [*NOTES, "the last word"]:
        answer = c.put(f"/api/v1/incidents/{iid}/note", json={"note": note}, headers=AUTH)
        assert answer.status_code == 200
        stamps.append(answer.get_json()["note_updated_at"])
    assert stamps[0] == site.h.clock.now().isoformat()
    made = [s for s, note in zip(stamps, [*NOTES, "the last word"], strict=True) if note]
    assert made == sorted(set(made))  # strictly rising, though the clock did not move
    site.writer.flush()
    assert site.stored() >= 1  # one row per save, or fewer where ReplacingMergeTree folded
    # a dashboard that saved nothing reads storage alone
    fresh = site.app().test_client()
    assert fresh.get(f"/api/v1/incidents/{iid}").get_json()["note"] == "the last word"
    assert c.get(f"/api/v1/incidents/{iid}").get_json()["note"] == "the last word"


def test_the_page_a_form_save_redirects_to_shows_the_new_note(site: Site) -> None:
    c = site.c
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").get_data(as_text=True))
    assert token is not None
    c.post("/login", data={"user": "ana", "password": "pw", "csrf": token.group(1)})
    iid = c.get("/api/v1/incidents").get_json()["incidents"][0]["id"]
    for note in ["First look.", "Second look.", "Third look."]:
        page = c.get(f"/incidents/{iid}").get_data(as_text=True)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        answer = c.post(f"/incidents/{iid}/note", data={"note": note, "csrf": csrf.group(1)},
                        follow_redirects=True)  # fmt: skip
        assert answer.status_code == 200
        assert note in answer.get_data(as_text=True)
    assert site.stored() == 0
