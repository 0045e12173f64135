"""No absolute URL is built from request headers: the feed, redirects, pages, API answers.

A cache in front of the dashboard keys on the path, not on ``Host``: a link built
from an attacker's ``Host`` or ``X-Forwarded-Host`` would be served to everyone.
Real app over real chDB data (tests.web_fixture), with one open incident.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from server.config.models import DashboardConfig
from server.web import WebContext, create_app
from tests.web_fixture import build

ATOM = "{http://www.w3.org/2005/Atom}"
EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example"}  # fmt: skip
BASIC = {"type": "basic", "users": {"ana": generate_password_hash("pw")}}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    store, h = build(tmp_path_factory.mktemp("links"))
    yield store, h
    store.close()


def client(built: Any, dashboard_url: str = "", auth: dict[str, Any] | None = None) -> FlaskClient:
    store, h = built
    config = h.config.model_copy(update={
        "alerting": h.config.alerting.model_copy(update={"dashboard_url": dashboard_url}),
        "dashboard": DashboardConfig.model_validate({"auth": auth or {"type": "none"}}),
    })  # fmt: skip
    return create_app(WebContext(config, store, h.clock, h.engine)).test_client()


def links(feed: bytes) -> list[str]:
    root = ET.fromstring(feed)  # noqa: S314 - our own output
    return [link.get("href", "") for link in root.iter(f"{ATOM}link")]


def test_without_a_configured_address_the_feeds_links_are_relative(built: Any) -> None:
    answer = client(built).get("/status/feed.atom", headers=EVIL)
    found = links(answer.data)
    assert len(found) == 3  # self, the status page, the one incident's entry
    assert found[:2] == ["/status/feed.atom", "/status"]
    assert re.fullmatch(r"/status#incident-\d{8}T\d{9}Z-[0-9a-f]{8}", found[2])
    assert b"evil.example" not in answer.data


def test_the_configured_dashboard_url_is_the_feeds_base_whatever_the_host(built: Any) -> None:
    c = client(built, "https://status.example.com/")
    found = links(c.get("/status/feed.atom", headers=EVIL).data)
    assert found[:2] == ["https://status.example.com/status/feed.atom",
                         "https://status.example.com/status"]  # fmt: skip
    assert found[2].startswith("https://status.example.com/status#incident-")


def test_a_configured_address_with_a_path_prefix_keeps_it_in_every_link(built: Any) -> None:
    c = client(built, "https://example.com/lightbulb/")
    found = links(c.get("/status/feed.atom", headers=EVIL).data)
    assert found[:2] == ["https://example.com/lightbulb/status/feed.atom",
                         "https://example.com/lightbulb/status"]  # fmt: skip
    assert found[2].startswith("https://example.com/lightbulb/status#incident-")


def test_a_dashboard_under_a_path_prefix_keeps_it_in_relative_links(built: Any) -> None:
    answer = client(built).get("/status/feed.atom", headers=EVIL,
                               environ_overrides={"SCRIPT_NAME": "/lb"})  # fmt: skip
    assert links(answer.data)[:2] == ["/lb/status/feed.atom", "/lb/status"]


PAGES = ["/", "/status", "/status/feed.atom", "/incidents", "/alerts", "/errors", "/reports",
         "/services/db", "/api/v1/openapi.json", "/api/v1/services", "/api/v1/incidents",
         "/api/v1/services/db/badge", "/api/v1/services/db/badge?metric=uptime",
         "/login?next=/alerts", "/nothing-here"]  # fmt: skip


def test_no_page_answer_or_redirect_carries_the_requests_host(built: Any) -> None:
    carried = {}
    open_ = client(built)
    signed = client(built, auth={**BASIC, "public_reads": False})
    for c in (open_, signed):
        for url in PAGES:
            answer = c.get(url, headers=EVIL)
            text = answer.get_data(as_text=True) + repr(dict(answer.headers))
            if "evil.example" in text:
                carried[url] = answer.status_code
    # the form actions' redirects, signed in
    page = signed.get("/login", headers=EVIL).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    answer = signed.post("/login?next=/incidents", headers=EVIL,
                         data={"user": "ana", "password": "pw", "csrf": csrf.group(1)})  # fmt: skip
    assert answer.status_code == 302
    if "evil.example" in answer.headers["Location"]:
        carried["POST /login"] = 302
    iid = open_.get("/api/v1/incidents").get_json()["incidents"][0]["id"]
    # the session cookie was set for the host the login came to
    page = signed.get(f"/incidents/{iid}", headers=EVIL).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    answer = signed.post(f"/incidents/{iid}/note", headers=EVIL,
                         data={"note": "x", "csrf": csrf.group(1)})  # fmt: skip
    assert answer.status_code == 302
    if "evil.example" in answer.headers["Location"]:
        carried["POST note"] = 302
    assert carried == {}
