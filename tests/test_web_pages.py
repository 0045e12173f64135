"""Every page and action on the Flask test client, over real chDB data."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from server.config.models import DashboardConfig
from server.storage.embedded import EmbeddedStorage
from server.web import WebContext, create_app
from server.web.alerts_view import current_alerts
from server.web.api_history import SHADES
from tests.alerting_harness import Harness
from tests.web_fixture import build


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStorage, Harness]]:
    store, h = build(tmp_path_factory.mktemp("web"))
    yield store, h
    store.close()


@pytest.fixture
def client(data: tuple[EmbeddedStorage, Harness]) -> Callable[..., FlaskClient]:
    store, h = data

    def make(auth: dict[str, Any] | None = None) -> FlaskClient:
        dashboard = DashboardConfig.model_validate({"auth": auth or {"type": "none"}})
        config = h.config.model_copy(update={"dashboard": dashboard})
        return create_app(WebContext(config, store, h.clock, h.engine)).test_client()

    return make


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def tiles(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-service="([^"]+)" data-status="([^"]+)"', page))


def test_overview_shows_each_service_with_its_current_status(
    client: Callable[..., FlaskClient],
) -> None:
    page = text(client().get("/"))
    assert tiles(page) == {"db": "FAILED", "api": "FAILED", "web": "OK", "lightbulb": "UNKNOWN"}
    assert "FAILED since 2026-11-22 11:00:00 UTC" in page
    assert "connection refused" in page
    assert "uptime 83.33%" in page  # db: 60 of 72 checks in the last 24 h were up
    assert "All times are UTC" in page


def test_overview_filters_by_stack_status_and_text(client: Callable[..., FlaskClient]) -> None:
    c = client()
    assert set(tiles(text(c.get("/?status=FAILED")))) == {"db", "api"}
    assert set(tiles(text(c.get("/?q=upstream")))) == {"api"}
    assert set(tiles(text(c.get("/?stack=lightbulb")))) == {"lightbulb"}
    assert "No service matches" in text(c.get("/?q=nothing-like-this"))


def test_service_page_has_timeline_charts_logs_and_alerts(
    client: Callable[..., FlaskClient],
) -> None:
    page = text(client().get("/services/db?range=6h"))
    assert "Status timeline" in page
    assert 'data-series="response_time_ms"' in page
    assert 'data-series="connections"' in page
    assert re.search(r'data-label="2026-11-22 \d\d:\d\d UTC: avg [\d.]+ ms', page)
    assert "pool exhausted" in page and "Traceback: boom" in page
    assert "Service down" in page
    assert "needed by" in page and "/services/api" in page


def test_service_page_log_search_and_levels_filter(client: Callable[..., FlaskClient]) -> None:
    c = client()
    assert "pool exhausted" in text(c.get("/services/db?level=ERROR&q=POOL"))
    assert "pool exhausted" not in text(c.get("/services/db?level=INFO"))
    assert "No log rows match" in text(c.get("/services/db?q=%27%20OR%201%3D1%20--"))


def test_filtering_the_logs_keeps_the_chosen_period_or_range(
    client: Callable[..., FlaskClient],
) -> None:
    # the log filter form carried a hidden range=24h, so filtering dropped a from/to period
    period = "from=2026-11-20T12:00:00Z&to=2026-11-22T12:00:00Z"
    form = text(client().get(f"/services/db?{period}")).split('class="filters"')[1]
    form = form.split("</form>")[0]
    assert '<input type="hidden" name="from" value="2026-11-20T12:00:00Z">' in form
    assert '<input type="hidden" name="to" value="2026-11-22T12:00:00Z">' in form
    assert 'name="range"' not in form
    preset = text(client().get("/services/db?range=7d")).split('class="filters"')[1]
    assert '<input type="hidden" name="range" value="7d">' in preset.split("</form>")[0]
    assert 'name="from"' not in preset.split("</form>")[0]


def test_a_disabled_service_says_so_on_its_page_api_and_badge(
    data: tuple[EmbeddedStorage, Harness],
) -> None:
    # the attack: a disabled service's page and badge said "no service", as for a typo
    store, h = data
    services = [s.model_copy(update={"enabled": False}) if s.id == "db" else s
                for s in h.config.services]  # fmt: skip
    config = h.config.model_copy(update={"services": services})
    c = create_app(WebContext(config, store, h.clock, h.engine)).test_client()
    for url in ("/services/db", "/api/v1/services/db"):
        answer = c.get(url)
        assert answer.status_code == 404
        said = text(answer).replace("&#39;", "'")
        assert "'db' is disabled (enabled: false in the configuration)" in said
    assert "no service 'nope'" in text(c.get("/api/v1/services/nope"))
    badge = c.get("/api/v1/services/db/badge").get_json()
    assert (badge["message"], badge["color"]) == ("disabled", SHADES["lightgrey"])
    assert c.get("/api/v1/services/nope/badge").status_code == 404


def test_service_page_30_days_reads_the_hourly_summary(client: Callable[..., FlaskClient]) -> None:
    page = text(client().get("/services/db?from=2026-10-23T12:00:00Z&to=2026-11-22T12:00:00Z"))
    assert "from the hourly summary" in page


def test_a_service_younger_than_the_range_is_shown_from_its_first_check(
    client: Callable[..., FlaskClient],
) -> None:
    page = text(client().get("/services/db?range=30d"))  # six hours of history
    assert "showing 2026-11-22 06:00 to 2026-11-22 12:00 UTC in 300 s buckets" in page
    assert "first checked 2026-11-22 06:00:00 UTC" in page
    assert "from the raw checks" in page


def test_alerts_page_lists_firing_and_inhibited_with_cause(
    client: Callable[..., FlaskClient],
) -> None:
    page = text(client().get("/alerts"))
    firing = page.split('data-section="Firing"')[1].split("</section>")[0]
    inhibited = page.split('data-section="Inhibited"')[1].split("</section>")[0]
    assert 'data-alert="down:db"' in firing
    assert 'data-alert="down:api"' in inhibited and "caused by" in inhibited


def test_alerts_page_shows_times_for_people_and_each_channels_delivery(
    client: Callable[..., FlaskClient],
) -> None:
    page = text(client().get("/alerts"))
    firing = page.split('data-section="Firing"')[1].split("</section>")[0]
    assert "<td>2026-11-22 11:00:00 UTC</td>" in firing  # no microseconds, no "T"
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", page)
    assert (
        '<div data-channel="hook" data-state="delivered">hook: delivered 2026-11-22 11:00:00 UTC'
        in firing
    )
    inhibited = page.split('data-section="Inhibited"')[1].split("</section>")[0]
    assert "data-state" not in inhibited  # held back: nothing was sent for it
    service = text(client().get("/services/db"))
    assert 'data-channel="hook" data-state="delivered"' in service


def test_dependencies_map_links_every_node_to_its_page(client: Callable[..., FlaskClient]) -> None:
    page = text(client().get("/dependencies"))
    assert set(re.findall(r'<a href="/services/([^"]+)" class="node[^"]*"', page)) == {
        "db",
        "api",
        "web",
    }
    assert "#d62728" in page  # db and api are red


def test_status_page_without_groups_has_one_group_per_stack(
    client: Callable[..., FlaskClient],
) -> None:
    page = text(client().get("/status"))
    assert 'data-group="default"' in page and "1 / 3 up" in page


@pytest.mark.parametrize(
    ("url", "status"),
    [("/services/nope", 404), ("/services/db?range=1y", 400), ("/services/db?from=yesterday", 400),
     ("/nothing-here", 404), ("/services/db?range=1000d", 400)],
)  # fmt: skip
def test_bad_page_requests_get_a_clear_error_page(
    client: Callable[..., FlaskClient], url: str, status: int
) -> None:
    response = client().get(url)
    assert response.status_code == status
    assert '<p class="error">' in text(response)


def test_pages_set_security_headers_and_escape_content(client: Callable[..., FlaskClient]) -> None:
    response = client().get("/?q=<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in text(response)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def signed_in(client: Callable[..., FlaskClient]) -> tuple[FlaskClient, str]:
    c = client({"type": "basic", "users": {"ana": generate_password_hash("pw")}})
    token = re.search(r'name="csrf" value="([^"]+)"', text(c.get("/login")))
    assert token is not None
    response = c.post("/login", data={"user": "ana", "password": "pw", "csrf": token.group(1)})
    assert response.status_code == 302
    fresh = re.search(r'name="csrf" value="([^"]+)"', text(c.get("/alerts")))
    assert fresh is not None and fresh.group(1) != token.group(1)  # a new session, a new token
    return c, fresh.group(1)


def test_a_signed_in_user_silences_an_alert_from_the_alerts_page(
    client: Callable[..., FlaskClient], data: tuple[EmbeddedStorage, Harness]
) -> None:
    c, csrf = signed_in(client)
    page = text(c.get("/alerts"))
    assert "signed in as ana" in page and "Silence</button>" in page
    response = c.post("/alerts/down:db/silence",
                      data={"csrf": csrf, "duration": "1h", "comment": "db failover"})  # fmt: skip
    assert response.status_code == 302
    silence = next(s for s in data[1].engine.silences.all() if s.comment == "db failover")
    assert (silence.author, silence.service, silence.rule) == ("ana", "db", "down")
    data[1].engine.expire_silence(silence.id)


def test_forms_without_the_csrf_token_are_refused(client: Callable[..., FlaskClient]) -> None:
    c, _ = signed_in(client)
    response = c.post("/alerts/down:db/ack", data={"csrf": "forged"})
    assert response.status_code == 403


def test_actions_need_a_signed_in_user(client: Callable[..., FlaskClient]) -> None:
    c = client({"type": "basic", "users": {"ana": generate_password_hash("pw")}})
    token = re.search(r'name="csrf" value="([^"]+)"', text(c.get("/login")))
    assert token is not None
    response = c.post("/alerts/down:db/ack", data={"csrf": token.group(1)})
    assert response.status_code == 401


def test_a_wrong_password_does_not_sign_in(client: Callable[..., FlaskClient]) -> None:
    c = client({"type": "basic", "users": {"ana": generate_password_hash("pw")}})
    token = re.search(r'name="csrf" value="([^"]+)"', text(c.get("/login")))
    assert token is not None
    page = text(c.post("/login", data={"user": "ana", "password": "no", "csrf": token.group(1)}))
    assert "wrong user or password" in page
    assert "signed in as" not in text(c.get("/alerts"))


def test_health_endpoints(client: Callable[..., FlaskClient]) -> None:
    c = client()
    assert c.get("/healthz").get_json() == {"status": "ok"}
    assert c.get("/readyz").get_json() == {"status": "ready", "storage": True}


def test_standalone_dashboard_refuses_the_embedded_database(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    config = tmp_path / "lightbulb.yaml"
    config.write_text(f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n")
    done = run_cli("-m", "server.cli", "dashboard", "--config", str(config))
    assert done.returncode == 2
    assert "owned by `lightbulb run`" in done.stderr


def test_top_errors_lists_patterns_with_links_to_matching_logs(
    client: Callable[..., FlaskClient],
) -> None:
    c = client()
    page = text(c.get("/errors"))
    assert "<code>pool exhausted</code>" in page
    link = re.search(r'href="(/services/db\?fp=\d+[^"]*)"', page)
    assert link is not None
    logs = text(c.get(link.group(1).replace("&amp;", "&")))
    assert "pool exhausted" in logs
    assert "No errors in this range" in text(c.get("/errors?service=web"))


def test_error_sparklines_say_they_count_errors(client: Callable[..., FlaskClient]) -> None:
    """They were captioned "response time, last 24 h: ... ms" (the tiles' caption)."""
    spark = text(client().get("/errors")).split('<svg class="spark"')[1].split("</svg>")[0]
    assert re.search(r"<title>errors per hour: 0 to \d+</title>", spark)
    assert "response time" not in spark and " ms" not in spark


def test_the_overview_pages_worst_first_and_counts_everything(
    client: Callable[..., FlaskClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.web import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    c = client()
    first, second = text(c.get("/")), text(c.get("/?page=2"))
    assert set(tiles(first)) == {"db", "api"}  # the FAILED ones come first
    assert set(tiles(second)) == {"lightbulb", "web"}
    assert "page 1 of 2" in first and "<b>2</b>" in second
    assert "<b>2</b> FAILED" in second  # counts cover every service on every page
    assert set(tiles(text(c.get("/?page=99")))) == {"lightbulb", "web"}  # clamped


def test_standalone_dashboard_reads_alerts_from_alert_events(
    data: tuple[EmbeddedStorage, Harness],
) -> None:
    store, h = data
    app = create_app(WebContext(h.config, store, h.clock))  # no engine: lightbulb dashboard
    c = app.test_client()
    alerts = {a["id"]: a for a in c.get("/api/v1/alerts").get_json()["alerts"]}
    assert alerts["down:db"]["state"] == "firing"
    assert alerts["down:db"]["notified"] is True  # from the notifications outbox
    assert [(d["channel"], d["state"]) for d in alerts["down:db"]["delivery"]] == [
        ("hook", "delivered")
    ]
    assert alerts["down:api"]["notified"] is False
    assert (alerts["down:api"]["suppressed"], alerts["down:api"]["caused_by"]) == (
        "inhibited",
        "db",
    )
    response = c.post("/api/v1/silences", json={"service": "db", "duration": "1h"})
    assert response.status_code in (403, 409)  # no auth configured, and no engine to apply it
    assert "Firing" in text(c.get("/alerts"))


def test_standalone_service_page_reads_only_its_alerts_with_the_same_delivery_states(
    data: tuple[EmbeddedStorage, Harness],
) -> None:
    store, h = data
    ctx = WebContext(h.config, store, h.clock)  # no engine: read from the alert log
    every = current_alerts(ctx)
    for sid in ("db", "api", "web"):
        truth = [a for a in every if a["service_id"] == sid]
        assert current_alerts(ctx, sid) == truth  # read by the log's key, same answer
    assert [a["id"] for a in current_alerts(ctx, "db")] == ["down:db"]
    assert current_alerts(ctx, "web") == []
    ids = ["down:db"]
    since = h.clock.now() - timedelta(days=1)
    log = ctx.alert_log
    assert log.deliveries(since, ids)["down:db"] == log.deliveries(since)["down:db"]
    page = text(create_app(ctx).test_client().get("/services/db"))
    assert 'data-channel="hook" data-state="delivered"' in page
    assert "down:api" not in page and 'data-alert="down:db"' in page


def test_with_public_reads_off_only_the_status_page_and_health_stay_open(
    client: Callable[..., FlaskClient],
) -> None:
    users = {"ana": generate_password_hash("pw")}
    c = client({"type": "basic", "users": users, "public_reads": False})
    assert c.get("/status").status_code == 200
    assert c.get("/healthz").status_code == 200
    page = c.get("/services/db")
    assert page.status_code == 302 and "/login?next=/services/db" in page.headers["Location"]
    assert c.get("/api/v1/services").status_code == 401
    assert c.get("/metrics").status_code == 401
    assert c.get("/api/v1/services", auth=("ana", "pw")).status_code == 200
    signed, _ = signed_in(lambda auth=None: c)  # the same client, now signed in
    assert signed.get("/services/db").status_code == 200


def test_a_result_older_than_two_intervals_is_shown_stale_never_as_current(
    data: tuple[EmbeddedStorage, Harness],
) -> None:
    """The fixture's last results are at 11:55 for services checked every 10 s."""
    from datetime import timedelta

    from tests.support.clock import FakeClock
    from tests.web_fixture import NOW

    store, h = data

    def at(now: Any) -> FlaskClient:
        return create_app(WebContext(h.config, store, FakeClock(now), h.engine)).test_client()

    fresh = at(NOW - timedelta(seconds=300 - 15))  # 15 s after the last result: < 2 x 10 s
    page = text(fresh.get("/"))
    assert "data-stale" not in page and "<b>0</b> STALE" in page
    assert [s["stale"] for s in fresh.get("/api/v1/services").get_json()["services"]] == [False] * 4
    later = at(NOW)  # 5 minutes after it
    page = text(later.get("/"))
    stale = set(re.findall(r'data-service="([^"]+)" data-status="[^"]+" data-stale', page))
    assert stale == {"db", "api", "web"}  # the daemon's own row: never checked, not stale
    assert "<b>3</b> STALE" in page and "stale: last result 2026-11-22 11:55:00 UTC" in page
    assert set(tiles(text(later.get("/?status=STALE")))) == {"db", "api", "web"}
    api = {s["id"]: s["stale"] for s in later.get("/api/v1/services").get_json()["services"]}
    assert api == {"db": True, "api": True, "web": True, "lightbulb": False}
    assert 'lightbulb_service_stale{service="web",stack="default",type="tcp"} 1.0' in text(
        later.get("/metrics")
    )
