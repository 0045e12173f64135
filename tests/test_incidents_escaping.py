"""Hostile check output and notes on the incident pages, the status page and the feed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckResult, Status
from server.config.models import DashboardConfig
from server.recorder import Recorder
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from tests.alerting_harness import Harness
from tests.support.clock import FakeClock
from tests.support.hostile import HOSTILE_TEXTS
from tests.test_incidents import listed
from tests.web_fixture import NOW, RULES, Svc

TOKEN = {"Authorization": "Bearer t0ken"}
BEARER = {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}
ATOM = "{http://www.w3.org/2005/Atom}"


# -- hostile text ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    """The database fails with every hostile text as its check output."""
    root = tmp_path_factory.mktemp("hostile")
    store = EmbeddedStorage(root / "db", "monitor")
    apply_schema(store, Target("monitor"))
    h = Harness(RULES, FakeClock(NOW - timedelta(hours=1)))
    recorder = Recorder(h, listener=h.engine)
    text = " | ".join(HOSTILE_TEXTS)
    for i in range(6):
        at = h.clock.advance(600 if i else 0)
        recorder.record(Svc("db"), CheckResult(Status.FAILED if i else Status.OK, text), at)
        h.deliver()
    h.log.sync()
    h.insert_into(store)
    config = h.config.model_copy(update={"dashboard": DashboardConfig.model_validate(BEARER)})
    c = create_app(WebContext(config, store, h.clock, h.engine)).test_client()
    (incident,) = listed(c)
    saved = c.post(f"/api/v1/incidents/{incident['id']}/note", json={"note": text}, headers=TOKEN)
    assert saved.status_code == 200
    yield c
    store.close()


def test_hostile_check_output_and_notes_are_escaped_on_every_page(hostile: FlaskClient) -> None:
    (incident,) = listed(hostile)
    assert "<script>alert(1)</script>" in incident["cause"]  # JSON carries the text as is
    assert "<script>alert(1)</script>" in incident["note"]
    for url in ("/incidents", f"/incidents/{incident['id']}", "/status"):
        page = hostile.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page, url
        assert "<img src=x" not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


def test_pages_replace_control_characters_in_notes_as_the_feed_does(
    hostile: FlaskClient,
) -> None:
    """The note as an operator typed it through the API (the check output in this
    fixture skips the runner, which makes a check's own text printable)."""
    (incident,) = listed(hostile)
    assert "\x00" in incident["note"] and "\x1b" in incident["note"]  # the API keeps them
    for url in (f"/incidents/{incident['id']}", "/status"):
        page = hostile.get(url).get_data(as_text=True)
        (note,) = re.findall(r'<div class="note-text" data-note>(.*?)</div>', page, re.S)
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", note), url
        assert "null\ufffdescape\ufffd[31mred" in note and "tab\tbell\ufffd" in note, url


def test_the_feed_is_valid_xml_whatever_the_note_holds(hostile: FlaskClient) -> None:
    answer = hostile.get("/status/feed.atom")
    body = answer.get_data(as_text=True)
    root = ET.fromstring(answer.data)  # noqa: S314 - our own output; raises on anything XML cannot hold
    summary = root.findall(f"{ATOM}entry")[0].findtext(f"{ATOM}summary") or ""
    assert "<script>alert(1)</script>" in summary  # the text, as text
    assert "<script>" not in body and "\x00" not in body and "\x07" not in body
    assert "\ufffd" in summary  # NUL, BEL and ESC replaced
    assert json.loads(json.dumps(summary))  # round-trips
