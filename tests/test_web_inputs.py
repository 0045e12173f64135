"""Values from paths and query strings that name no real time or number: a 4xx, never a 500.

Over the real app and real chDB data (tests.web_fixture), signed out and signed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from server.config.models import DashboardConfig
from server.web import WebContext, create_app
from tests.web_fixture import build

TOKEN = {"Authorization": "Bearer t0ken"}
BEARER = {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}

# shaped like an incident id, but no such instant (or none the tables can hold)
IMPOSSIBLE_IDS = [
    "00000101T000000000Z-00000000",  # year 0
    "00010101T000000000Z-00000000",  # year 1: a day before it overflows
    "20261301T000000000Z-00000000",  # month 13
    "20260230T000000000Z-00000000",  # 30 February
    "20261201T250000000Z-00000000",  # hour 25
    "20261201T236000000Z-00000000",  # minute 60
    "20261201T000099000Z-00000000",  # second 99
    "19000101T000000000Z-00000000",  # before 1970
    "19700101T000000000Z-00000000",  # the first day the tables hold
    "99991231T235959999Z-00000000",  # after 2105
    "2026\u0661201T000000000Z-00000000",  # a non-ASCII digit
    "20261122T110000000Z-252abfc8\n",  # a real id with a newline after it
]


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    store, h = build(tmp_path_factory.mktemp("inputs"))
    config = h.config.model_copy(update={"dashboard": DashboardConfig.model_validate(BEARER)})
    yield create_app(WebContext(config, store, h.clock, h.engine)).test_client()
    store.close()


@pytest.mark.parametrize("iid", IMPOSSIBLE_IDS)
def test_an_incident_id_naming_no_real_instant_is_404_everywhere(c: FlaskClient, iid: str) -> None:
    path = quote(iid, safe="")
    answers: dict[str, Any] = {
        "page": c.get(f"/incidents/{path}"),
        "api": c.get(f"/api/v1/incidents/{path}"),
        "api note, signed out": c.put(f"/api/v1/incidents/{path}/note", json={"note": "x"}),
        "api note": c.put(f"/api/v1/incidents/{path}/note", json={"note": "x"}, headers=TOKEN),
        "api note, POST": c.post(
            f"/api/v1/incidents/{path}/note", json={"note": "x"}, headers=TOKEN
        ),
    }
    codes = {name: a.status_code for name, a in answers.items()}
    assert codes == {"page": 404, "api": 404, "api note, signed out": 401, "api note": 404,
                     "api note, POST": 404}  # fmt: skip


# numbers and times that int(), date parsing or the database would choke on
ODD_VALUES = [
    "\u00b2",
    "\u0661",
    "99999999999999999999",
    "18446744073709551616",
    "-1",
    "1e999",
    "nan",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "2026-12-01T25:00",
    "99999999999d",
    "0s",
    "\x00",
    "",
]
PAGES = [
    "/?page={v}",
    "/?stack={v}&status={v}&q={v}",
    "/services/web?range={v}",
    "/services/web?from={v}",
    "/services/web?to={v}",
    "/services/web?fp={v}&level={v}&q={v}",
    "/incidents?range={v}",
    "/incidents?from={v}&to={v}",
    "/incidents?service={v}",
    "/errors?range={v}&service={v}",
    "/reports/{v}",
    "/status?x={v}",
    "/api/v1/services/web/metrics?name={v}&range={v}",
    "/api/v1/services/web/metrics?step={v}",
    "/api/v1/services/web/logs?limit={v}&level={v}&q={v}",
    "/api/v1/services/web/uptime?from={v}&to={v}",
    "/api/v1/services/web/uptime?range={v}",
    "/api/v1/services/web/badge?metric=uptime&period={v}",
    "/api/v1/incidents?limit={v}",
    "/api/v1/incidents?from={v}",
    "/api/v1/incidents?range={v}",
    "/api/v1/alerts?service={v}&limit={v}&state={v}",
]


@pytest.mark.parametrize("page", PAGES)
def test_odd_numbers_and_times_in_a_query_are_refused_or_ignored_never_a_500(
    c: FlaskClient, page: str
) -> None:
    failed = {}
    for value in ODD_VALUES:
        url = page.format(v=quote(value, safe=""))
        code = c.get(url, headers=TOKEN).status_code
        if code >= 500:
            failed[url] = code
    assert failed == {}


ODD_IDS = ["20261301T000000000Z-00000000", "down:\u0661", "down:db\n", "%00", "a" * 5000, "..%2f.."]


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_ids_of_alerts_and_silences_are_4xx(c: FlaskClient, odd: str) -> None:
    path = quote(odd, safe="")
    codes = {
        "ack": c.post(f"/api/v1/alerts/{path}/ack", json={}, headers=TOKEN).status_code,
        "silence": c.delete(f"/api/v1/silences/{path}", headers=TOKEN).status_code,
        "service": c.get(f"/api/v1/services/{path}", headers=TOKEN).status_code,
        "service page": c.get(f"/services/{path}", headers=TOKEN).status_code,
        "uptime": c.get(f"/api/v1/services/{path}/uptime", headers=TOKEN).status_code,
        "badge": c.get(f"/api/v1/services/{path}/badge", headers=TOKEN).status_code,
    }
    assert all(400 <= code < 500 for code in codes.values()), codes


LIMITS = ["/api/v1/incidents?limit={v}", "/api/v1/services/web/logs?limit={v}",
          "/api/v1/errors?limit={v}"]  # fmt: skip


@pytest.mark.parametrize("page", LIMITS)
@pytest.mark.parametrize("odd", ["\u0661\u0660", "\uff11\uff10", "1_0", " 10", "+10", "10 "])
def test_a_limit_in_anything_but_ascii_digits_is_400_like_a_range(
    c: FlaskClient, page: str, odd: str
) -> None:
    answer = c.get(page.format(v=quote(odd, safe="")), headers=TOKEN)
    assert answer.status_code == 400, answer.data
    assert "ASCII digits 0-9" in answer.get_json()["error"]
    assert c.get(page.format(v="10"), headers=TOKEN).status_code == 200
