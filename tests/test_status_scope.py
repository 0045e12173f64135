"""/status and its feed show only the services on the page, with right 90-day figures.

Real app over real chDB data (tests.web_fixture): db fails for the last hour and
api with it (one open incident of both); web is up throughout. The page's one
group holds web only, so db and api, their incident and their maintenance are
not the public's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.config.models import SilenceConfig, StatusPageConfig
from server.web import WebContext, create_app
from tests.web_fixture import NOW, build

TOMORROW = NOW + timedelta(days=1)
WINDOW = {"start": TOMORROW.isoformat(), "end": (TOMORROW + timedelta(hours=2)).isoformat()}
SILENCES = [
    {"id": "hidden-svc", "service": "db", "comment": "SECRET db maintenance", **WINDOW},
    {"id": "hidden-glob", "service": "a*", "comment": "SECRET api work", **WINDOW},
    {"id": "shown-svc", "service": "web", "comment": "web deploy", **WINDOW},
    {"id": "everything", "service": "*", "comment": "network swap", **WINDOW},
    # a window for rules that select none of the page's services is not its maintenance
    {"id": "other-rule", "service": "*", "rule": "db-*", "comment": "SECRET rule", **WINDOW},
    {"id": "our-rule", "service": "w*", "rule": "down", "comment": "rule work", **WINDOW},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    store, h = build(tmp_path_factory.mktemp("status"))
    yield store, h
    store.close()


def site(built: Any, groups: list[dict[str, Any]]) -> tuple[FlaskClient, Any]:
    """A dashboard over the one store (chDB opens one per process) with these groups."""
    store, h = built
    config = h.config.model_copy(update={
        "status_page": StatusPageConfig.model_validate({"groups": groups}),
        "silences": [SilenceConfig.model_validate(s) for s in SILENCES],
    })  # fmt: skip
    return create_app(WebContext(config, store, h.clock, h.engine)).test_client(), store


@pytest.fixture
def web_only(built: Any) -> tuple[FlaskClient, Any]:
    return site(built, [{"name": "Front", "services": ["web"]}])


@pytest.fixture
def ungrouped(built: Any) -> tuple[FlaskClient, Any]:
    return site(built, [])


@pytest.fixture
def overlapping(built: Any) -> tuple[FlaskClient, Any]:
    """web in both groups: the query spreads each row over its service's groups."""
    return site(built, [{"name": "Front", "services": ["web"]}, {"name": "All", "services": ["*"]}])


def test_maintenance_of_services_not_on_the_page_is_not_listed(web_only: Any) -> None:
    c: FlaskClient = web_only[0]
    page = c.get("/status").get_data(as_text=True)
    assert "SECRET" not in page
    assert "web deploy" in page and "network swap" in page and "rule work" in page
    # a window selecting every service names only the page's
    (everything,) = [line for line in page.splitlines() if "network swap" in line]
    assert ": web (network swap)" in everything and "db" not in everything


def test_incidents_of_services_not_on_the_page_stay_off_it_and_off_the_feed(
    web_only: Any,
) -> None:
    c: FlaskClient = web_only[0]
    page = c.get("/status").get_data(as_text=True)
    assert "Current incidents" not in page and "data-incident" not in page
    feed = c.get("/status/feed.atom").get_data(as_text=True)
    assert "<entry" not in feed and "db" not in feed and "api" not in feed


def uptime_cells(page: str) -> dict[str, str]:
    """Service id -> the text of its '90 days' cell, from the groups' member rows (a
    service in two groups has two rows, which must agree)."""
    found: dict[str, str] = {}
    for sid, cells in re.findall(r'<tr data-service="([^"]+)">(.*?)</tr>', page, re.S):
        text = re.findall(r"<td>(.*?)</td>", cells, re.S)[-1]
        assert found.setdefault(sid, text) == text, f"{sid}: {found[sid]} and {text}"
    return found


@pytest.mark.parametrize("layout", ["web_only", "ungrouped", "overlapping"])
def test_each_services_90_day_uptime_is_its_checks_up_over_its_checks(
    layout: str, request: pytest.FixtureRequest
) -> None:
    c, store = request.getfixturevalue(layout)
    by_hand = {
        r["service_id"]: 100 * int(r["up"]) / int(r["n"])
        for r in store.query(
            "SELECT service_id, countIf(status_code IN (0, 1)) AS up, count() AS n "
            "FROM monitor.service_status GROUP BY service_id"
        )
    }
    cells = uptime_cells(c.get("/status").get_data(as_text=True))
    assert cells == {sid: f"{by_hand[sid]:.2f}%" for sid in cells}
    assert set(cells) == ({"web"} if layout == "web_only" else {"db", "api", "web"})
