"""The status page, SLOs, uptime over any period and badges, over 90 days of recorder output."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from server.analytics.slo import significant
from server.config.models import Config, DashboardConfig, StatusPageConfig
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from server.web.api_history import BAND_COLOURS, SHADES, STATUS_COLOURS
from tests.dashboard_fixture import NOW, build
from tests.support.clock import FakeClock
from tests.test_contrast import contrast

Data = tuple[EmbeddedStorage, Config, FakeClock, Any]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    store, config, clock, engine = build(tmp_path_factory.mktemp("status"))
    yield store, config, clock, engine
    store.close()


@pytest.fixture
def client(data: Data) -> Callable[..., FlaskClient]:
    store, config, clock, engine = data

    def make(auth: dict[str, Any] | None = None) -> FlaskClient:
        dashboard = DashboardConfig.model_validate({"auth": auth or {"type": "none"}})
        changed = config.model_copy(update={"dashboard": dashboard})
        return create_app(WebContext(changed, store, clock, engine)).test_client()

    return make


def raw(store: EmbeddedStorage, sid: str, start: datetime, end: datetime) -> tuple[int, int]:
    row = store.query(
        "SELECT count() AS n, countIf(status_code IN (0, 1)) AS up FROM monitor.service_status "
        "WHERE service_id = {sid:String} AND timestamp >= {s:DateTime64(3, 'UTC')} "
        "AND timestamp < {e:DateTime64(3, 'UTC')}",
        {"sid": sid, "s": start, "e": end},
    )[0]
    return int(row["up"]), int(row["n"])


def test_groups_are_configured_with_status_in_words_and_a_90_day_bar(
    client: Callable[..., FlaskClient],
) -> None:
    page = client().get("/status").get_data(as_text=True)
    assert "<h1>Example Corp status</h1>" in page
    heading = (
        r'data-group="([^"]+)">\s*<h2>[^<]+<span class="badge s\d">(\w+)</span> <small>([\d /]+) up'
    )
    groups = re.findall(heading, page)
    assert groups == [("Website", "FAILED", "1 / 2"), ("Back office", "OK", "2 / 2")]
    assert page.count('<svg class="daybar"') == 2 and page.count("<rect class=") == 2 * 90
    assert "1 of 4 services has a problem." in page
    assert 'data-service="lightbulb"' not in page  # the daemon's own row is not public


@pytest.mark.parametrize(
    ("extra", "headline"),
    [
        ([{"name": "Everything", "services": ["*"]}], "1 of 4 services has a problem."),
        ([{"name": "Search again", "services": ["search", "s*"]},
          {"name": "Hosts", "services": ["host", "stack:infrastructure"]}],
         "1 of 4 services has a problem."),
    ],
)  # fmt: skip
def test_the_headline_counts_each_service_once_whatever_groups_hold_it(
    data: Data, extra: list[dict[str, Any]], headline: str
) -> None:
    store, config, clock, engine = data
    groups = [g.model_dump() for g in config.status_page.groups] + extra
    page_cfg = StatusPageConfig.model_validate({"title": "t", "groups": groups})
    changed = config.model_copy(update={"status_page": page_cfg})
    page = create_app(WebContext(changed, store, clock, engine)).test_client().get("/status")
    assert headline in page.get_data(as_text=True)


def test_a_group_day_sums_its_services_checks(
    client: Callable[..., FlaskClient], data: Data
) -> None:
    store = data[0]
    day = (NOW - timedelta(days=10)).replace(hour=0)
    page = client().get("/status").get_data(as_text=True)
    website = page.split('data-group="Website"')[1].split("</svg>")[0]
    title = re.search(rf'data-day="{day:%Y-%m-%d}"><title>([^<]+)<', website)
    up, total = raw(store, "shop", day, day + timedelta(days=1))  # search did not exist yet
    assert title is not None
    assert title.group(1) == (f"{day:%Y-%m-%d}: {100 * up / total:.2f}% up, {total - up} of "
                              f"{total} checks down (below 95% up)")  # fmt: skip


def maintenance(page: str) -> list[str]:
    found = re.findall(r"<li data-start[^>]*>(.*?)</li>", page, re.S)
    return [html.unescape(re.sub(r"\s+", " ", item).strip()) for item in found]


def test_scheduled_maintenance_lists_each_window_for_shown_services_once(
    client: Callable[..., FlaskClient],
) -> None:
    page = client().get("/status").get_data(as_text=True)
    items = maintenance(page)
    assert items == [
        "<b>Planned</b> 2026-11-23 03:00:00 UTC to 2026-11-23 03:30:00 UTC: Order worker "
        '(nightly backup); repeats: cron "0 3 * * *" (UTC), 30m each, 13 more times in the '
        "next 14 days",
        "<b>Planned</b> 2026-11-24 06:00:00 UTC to 2026-11-24 07:00:00 UTC: Shop front, "
        "Search API (database upgrade)",
    ]  # the rule-only silence holds alerts back; it is not maintenance of a service


def test_a_window_open_now_is_in_progress(data: Data) -> None:
    store, config, _, engine = data
    during = FakeClock(datetime(2026, 11, 23, 3, 10, tzinfo=NOW.tzinfo))
    page = create_app(WebContext(config, store, during, engine)).test_client().get("/status")
    assert maintenance(page.get_data(as_text=True))[0].startswith(
        "<b>In progress</b> 2026-11-23 03:00:00 UTC to 2026-11-23 03:30:00 UTC: Order worker"
    )


def test_slo_on_the_service_page_overview_and_api_matches_the_raw_checks(
    client: Callable[..., FlaskClient], data: Data
) -> None:
    store = data[0]
    c = client()
    slo = c.get("/api/v1/services/shop").get_json()["slo"]
    up, total = raw(store, "shop", NOW - timedelta(days=30), NOW)
    bad_share = (total - up) / total
    assert (slo["checks"], slo["good"]) == (total, up)
    assert slo["availability"] == round(100 * up / total, 4)
    assert slo["error_budget_minutes"] == 216.0  # 0.5 % of 30 days
    left = 1 - bad_share / 0.005
    assert slo["error_budget_remaining_percent"] == significant(100 * left)
    assert slo["error_budget_remaining_minutes"] == significant(216 * left)
    assert slo["burn_rate_1h"] == 0.0 and slo["met"] is True
    page = c.get("/services/shop").get_data(as_text=True)
    assert f"{216 * left:.1f} min of 216.0 min ({100 * left:.0f}%) error budget left" in page
    assert "burn rate 0x over 1 h, 0x over 6 h" in page
    tile = c.get("/").get_data(as_text=True).split('data-service="shop"')[1].split("</article>")[0]
    minutes = f"{216 * left:.1f} min ({100 * left:.0f}%)"
    shown = math.floor(10_000 * up / total) / 100  # cut, never rounded up to the target
    assert f"SLO 99.5%: {shown:.2f}% met · {minutes} budget left" in tile
    assert "burn 0x 1 h, 0x 6 h" in tile
    assert c.get("/api/v1/services/search").get_json()["slo"] is None


def test_uptime_for_any_period_counts_exactly_what_was_checked(
    client: Callable[..., FlaskClient], data: Data
) -> None:
    store, c = data[0], client()
    start, end = NOW - timedelta(days=10, hours=7, minutes=13), NOW - timedelta(days=9, minutes=1)
    body = c.get("/api/v1/services/shop/uptime", query_string={
        "from": start.isoformat(), "to": end.isoformat()}).get_json()  # fmt: skip
    up, total = raw(store, "shop", start, end)
    assert (body["up"], body["checks"]) == (up, total) and up < total
    assert body["uptime"] == round(100 * up / total, 4)
    assert [d["day"] for d in body["days"]] == ["2026-11-12", "2026-11-13"]
    midnight = datetime(2026, 11, 13, tzinfo=UTC)  # each day clipped to the period
    for day, (a, b) in zip(body["days"], [(start, midnight), (midnight, end)], strict=True):
        assert (day["up"], day["checks"]) == raw(store, "shop", a, b)
    assert sum(d["checks"] for d in body["days"]) == total
    inside = (end - timedelta(hours=2, minutes=30, seconds=0.5), end - timedelta(minutes=10.0042))
    within = c.get("/api/v1/services/shop/uptime", query_string={  # part of one day
        "from": inside[0].isoformat(), "to": inside[1].isoformat()}).get_json()  # fmt: skip
    (only,) = within["days"]
    assert (only["up"], only["checks"]) == (within["up"], within["checks"])
    assert (within["up"], within["checks"]) == raw(store, "shop", *inside)
    assert within["checks"] > 0
    assert c.get("/api/v1/services/shop/uptime?from=2026-11-02&to=2026-11-01").status_code == 400
    page = c.get("/services/shop", query_string={
        "from": start.isoformat(), "to": end.isoformat()}).get_data(as_text=True)  # fmt: skip
    assert f"{total - up} of {total:,} checks down" in page


def test_badges_answer_in_the_shields_io_endpoint_schema(
    client: Callable[..., FlaskClient],
) -> None:
    c = client()
    assert c.get("/api/v1/services/search/badge").get_json() == {
        "schemaVersion": 1, "label": "Search API", "message": "failed",
        "color": SHADES["red"]}  # fmt: skip
    uptime = c.get("/api/v1/services/search/badge?metric=uptime&period=1d").get_json()
    assert uptime == {"schemaVersion": 1, "label": "uptime 1d", "message": "83.33%",
                      "color": SHADES["red"]}  # fmt: skip
    slo = c.get("/api/v1/services/shop/badge?metric=slo").get_json()
    assert slo["label"] == "SLO 99.5%" and slo["message"].endswith("% budget left")
    assert c.get("/api/v1/services/search/badge?metric=slo").status_code == 404
    assert c.get("/api/v1/services/shop/badge?metric=nope").status_code == 400
    assert c.get("/api/v1/services/shop/badge?metric=uptime&period=2y").status_code == 400


def test_with_private_reads_only_status_page_services_have_public_badges(
    client: Callable[..., FlaskClient],
) -> None:
    c = client({"type": "basic", "public_reads": False,
                "users": {"ana": generate_password_hash("pw")}})  # fmt: skip
    assert c.get("/status").status_code == 200
    assert c.get("/api/v1/services/shop/badge").status_code == 200
    assert c.get("/api/v1/services/lightbulb/badge").status_code == 401
    assert c.get("/api/v1/services/no-such/badge").status_code == 401  # existence not revealed
    assert c.get("/api/v1/services/shop/uptime").status_code == 401
    signed = c.get("/api/v1/services/lightbulb/badge", auth=("ana", "pw"))
    assert signed.status_code == 200


def test_a_control_character_in_a_label_is_u_fffd_on_every_page(data: Data) -> None:
    """Markup built in Python (tables, tiles, day bars, the dependency SVG) follows the
    rule the templates follow: BEL is shown as U+FFFD, never written raw."""
    store, config, clock, engine = data
    services = [
        s.model_copy(update={"label": "Shop\u0007front"}) if s.id == "shop" else s
        for s in config.services
    ]
    changed = config.model_copy(
        update={"services": services,
                "dashboard": DashboardConfig.model_validate({"auth": {"type": "none"}})}
    )  # fmt: skip
    app = create_app(WebContext(changed, store, clock, engine)).test_client()
    for path in ("/status", "/", "/services/shop", "/dependencies"):
        page = app.get(path).get_data(as_text=True)
        assert "Shop\ufffdfront" in page, path
        assert "\u0007" not in page, (path, page[max(0, page.find("\u0007") - 200) :][:300])


def test_markup_built_in_python_escapes_through_the_one_rule() -> None:
    """``markupsafe.escape`` alone lets BEL through: modules building markup use
    ``server.core.text.escape`` (U+FFFD first), as Jinja's finalize does for templates."""
    import ast

    from server.core.text import escape
    from tests.conftest import REPO

    assert escape("a\u0007<b>") == "a\ufffd&lt;b&gt;"
    for path in (REPO / "server").rglob("*.py"):
        if path == REPO / "server/core/text.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "markupsafe":
                assert "escape" not in {a.name for a in node.names}, path


def test_every_badge_colour_reads_at_4_5_to_1_with_white_text() -> None:
    """shields.io draws white text on a dark badge colour; its named colours read at 1.95:1
    (yellow) to 4.38:1 (brightgreen). Every colour a badge answers with is one of ours."""
    assert set(STATUS_COLOURS.values()) | set(BAND_COLOURS.values()) <= SHADES.keys()
    assert {"red", "yellow", "brightgreen", "lightgrey"} <= SHADES.keys()  # the SLO badge's
    for name, shade in SHADES.items():
        assert re.fullmatch(r"#[0-9a-f]{6}", shade), name
        assert contrast(shade, "#ffffff") >= 4.5, (name, shade, contrast(shade, "#ffffff"))
