"""Clearing an incident's note is a save like any other: the feed's ``updated`` moves to it.

Real app, real Writer (write-ahead log in tmp_path) and real chDB; the clock is moved
by hand. Read twice: from the app that saved (its read-your-writes copy) and, after the
writer's flush, from a new app that knows only what storage holds.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from server.config.models import DashboardConfig
from server.spool import Spool
from server.tables import WRITTEN_TABLES
from server.web import WebContext, create_app
from server.writer import Writer
from tests.web_fixture import build

ATOM = "{http://www.w3.org/2005/Atom}"
BASIC = {"type": "basic", "users": {"ana": generate_password_hash("pw")}}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"ana:pw").decode()}


class Site:
    def __init__(self, root: Path) -> None:
        self.store, self.h = build(root)
        self.config = self.h.config.model_copy(
            update={"dashboard": DashboardConfig.model_validate({"auth": BASIC})}
        )
        self.writer = Writer(self.store, Spool(root / "spool", 10**8), columns=WRITTEN_TABLES)

    def client(self) -> FlaskClient:
        """A dashboard over the store; a new one knows nothing an earlier one saved."""
        ctx = WebContext(self.config, self.store, self.h.clock, self.h.engine, sink=self.writer)
        app: Any = create_app(ctx)
        return app.test_client()  # type: ignore[no-any-return]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.store.close()


def entry(c: FlaskClient, iid: str) -> tuple[datetime, datetime, str]:
    """The feed's own ``updated``, and the entry of ``iid``'s ``updated`` and summary."""
    root = ET.fromstring(c.get("/status/feed.atom").data)  # noqa: S314 - our own output
    (found,) = [e for e in root.findall(f"{ATOM}entry")
                if (e.find(f"{ATOM}link") is not None
                    and e.find(f"{ATOM}link").get("href", "").endswith(iid))]  # type: ignore[union-attr]  # fmt: skip
    return (stamp(root.findtext(f"{ATOM}updated")), stamp(found.findtext(f"{ATOM}updated")),
            found.findtext(f"{ATOM}summary") or "")  # fmt: skip


def stamp(text: str | None) -> datetime:
    assert text is not None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_clearing_a_note_moves_the_feed_entrys_updated_forward_not_back(site: Site) -> None:
    c = site.client()
    iid = c.get("/api/v1/incidents").get_json()["incidents"][0]["id"]
    note = f"/api/v1/incidents/{iid}/note"
    _, before, _ = entry(c, iid)
    written = site.h.clock.advance(61)
    assert c.put(note, json={"note": "Investigating."}, headers=AUTH).status_code == 200
    assert entry(c, iid)[1] == written.replace(microsecond=0) > before
    cleared = site.h.clock.advance(61)
    answer = c.put(note, json={"note": ""}, headers=AUTH)
    assert answer.status_code == 200 and answer.get_json()["note"] is None
    newest, updated, summary = entry(c, iid)
    assert updated == cleared.replace(microsecond=0) > written
    assert newest >= updated
    assert "Investigating." not in summary and not summary.endswith("\n")

    site.writer.flush()  # storage alone says the same: a new app has no copy of the save
    fresh = site.client()
    newest, updated, summary = entry(fresh, iid)
    assert updated == cleared.replace(microsecond=0) and newest >= updated
    assert "Investigating." not in summary
    for reader in (c, fresh):  # the API and the pages show the note cleared alike
        one = reader.get(f"/api/v1/incidents/{iid}").get_json()
        assert (one["note"], one["note_author"], one["note_updated_at"]) == (None, None, None)
        assert "No note yet." in reader.get(f"/incidents/{iid}").get_data(as_text=True)
        assert "data-note" not in reader.get("/status").get_data(as_text=True)
