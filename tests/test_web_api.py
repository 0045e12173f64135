"""The JSON API over real chDB data: every route, every error path, and no 500s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from server.config.models import DashboardConfig
from server.web import WebContext, create_app
from server.web.openapi import openapi_document
from tests.alerting_harness import Harness
from tests.web_fixture import build

TOKEN = {"Authorization": "Bearer t0ken"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskClient, Harness]]:
    store, h = build(tmp_path_factory.mktemp("api"))
    dashboard = DashboardConfig.model_validate(
        {"auth": {"type": "bearer", "tokens": {"ops": "t0ken"}}}
    )
    config = h.config.model_copy(update={"dashboard": dashboard})
    yield create_app(WebContext(config, store, h.clock, h.engine)).test_client(), h
    store.close()


@pytest.fixture
def c(api: tuple[FlaskClient, Harness]) -> FlaskClient:
    return api[0]


def test_services_lists_current_status_of_each(c: FlaskClient) -> None:
    services = {s["id"]: s for s in c.get("/api/v1/services").get_json()["services"]}
    db = services["db"]
    assert (db["status_code"], db["status"], db["message"]) == (2, "FAILED", "connection refused")
    assert db["since"] == "2026-11-22T11:00:00+00:00"
    assert db["last_check"] == "2026-11-22T11:55:00+00:00"
    assert {"id", "label", "type", "stack", "status_code", "status", "since", "last_check",
            "message"} <= set(db)  # fmt: skip
    assert services["web"]["uptime"]["24h"] == 100.0


def test_one_service_carries_its_relations(c: FlaskClient) -> None:
    api = c.get("/api/v1/services/api").get_json()
    assert api["depends_on"] == ["db"] and api["dependents"] == ["web"]


def test_status_buckets_come_from_raw_checks_or_the_hourly_summary(c: FlaskClient) -> None:
    raw = c.get("/api/v1/services/db/status?range=6h&step=1m").get_json()
    hourly = c.get("/api/v1/services/db/status?range=7d&step=1h").get_json()
    assert raw["source"] == "service_status" and hourly["source"] == "service_status_hourly"
    assert sum(b["checks"] for b in raw["buckets"]) == sum(b["checks"] for b in hourly["buckets"])
    assert hourly["buckets"][-1]["worst"] == 2 and hourly["buckets"][-1]["failures"] == 12


def test_metrics_lists_names_then_serves_a_series(c: FlaskClient) -> None:
    names = c.get("/api/v1/services/db/metrics?range=6h").get_json()["names"]
    assert {"response_time_ms", "cpu_usage", "memory_usage", "connections"} <= set(names)
    series = c.get("/api/v1/services/db/metrics?name=connections&range=6h&step=1h").get_json()
    assert series["unit"] == "count" and len(series["points"]) >= 6
    assert all(40 <= p["avg"] <= 46 for p in series["points"])


def test_every_series_answers_with_its_unit_from_one_place(c: FlaskClient) -> None:
    """memory_usage holds a percent of the machine's memory; it was answered as "MB"."""
    units = {
        name: c.get(f"/api/v1/services/db/metrics?name={name}&range=6h").get_json()["unit"]
        for name in ("response_time_ms", "cpu_usage", "memory_usage", "connections")
    }
    assert units == {"response_time_ms": "ms", "cpu_usage": "percent",
                     "memory_usage": "percent", "connections": "count"}  # fmt: skip
    names = c.get("/api/v1/services/db/metrics?range=6h").get_json()["names"]
    assert len(names) == len(set(names))


def test_logs_filter_by_level_and_text_with_a_limit(c: FlaskClient) -> None:
    logs = c.get("/api/v1/services/db/logs?level=ERROR&q=pool&limit=2").get_json()["logs"]
    assert len(logs) == 2 and all(row["log_level"] == "ERROR" for row in logs)
    assert logs[0]["timestamp"] > logs[1]["timestamp"]


def test_acknowledging_an_alert_needs_auth_and_records_who(
    api: tuple[FlaskClient, Harness],
) -> None:
    c, _ = api
    assert c.post("/api/v1/alerts/down:db/ack", json={}).status_code == 401
    response = c.post("/api/v1/alerts/down:db/ack", json={"comment": "on it"}, headers=TOKEN)
    assert response.get_json()["acknowledged_by"] == "ops"
    assert c.post("/api/v1/alerts/down:web/ack", json={}, headers=TOKEN).status_code == 404


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/api/v1/services/nope", 404, "no service"),
        ("/api/v1/services/db/status?range=tomorrow", 400, "range"),
        ("/api/v1/services/db/status?from=2026-13-01", 400, "from"),
        ("/api/v1/services/db/status?from=2026-11-22T12:00:00Z&to=2026-11-22T10:00:00Z", 400,
         "before"),
        ("/api/v1/services/db/status?range=30d&step=1s", 400, "step too small"),
        ("/api/v1/services/db/logs?limit=100000", 400, "limit"),
        ("/api/v1/services/db/logs?limit=ten", 400, "whole number"),
        ("/api/v1/services/db/logs?level=LOUD", 400, "level"),
        ("/api/v1/services/db/metrics?name=" + "x" * 300, 400, "name"),
        ("/api/v1/services/db'%20OR%201=1--/logs", 404, "no service"),
    ],
)  # fmt: skip
def test_bad_parameters_get_a_4xx_with_a_json_error(
    c: FlaskClient, url: str, status: int, message: str
) -> None:
    response = c.get(url)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_injection_attempts_are_data_not_sql(c: FlaskClient) -> None:
    attempt = "x') OR 1=1; DROP TABLE monitor.service_logs; --"
    response = c.get("/api/v1/services/db/logs", query_string={"q": attempt})
    assert response.status_code == 200 and response.get_json()["logs"] == []
    assert c.get("/api/v1/services/db/logs?q=pool").get_json()["logs"]  # table still there


def test_the_openapi_document_is_valid_and_lists_every_api_route(c: FlaskClient) -> None:
    document = c.get("/api/v1/openapi.json").get_json()
    validate(document)
    rules = {
        str(r.rule).replace("<path:", "{").replace("<", "{").replace(">", "}")
        for r in c.application.url_map.iter_rules()
        if str(r.rule).startswith(("/api/v1/", "/v1/")) and r.rule != "/api/v1/openapi.json"
    }
    assert rules == set(document["paths"])


def _requests() -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    """Every documented GET with its parameters filled by arbitrary text."""
    document = openapi_document()
    cases = []
    for path, item in document["paths"].items():
        if "get" not in item:
            continue
        params = item["get"]["parameters"]
        query = {p["name"]: st.text(max_size=40) for p in params if p["in"] == "query"}
        path_ids = st.sampled_from(["db", "nope", "../x", "a'b", "%", ""])
        cases.append(st.tuples(st.just(path), path_ids, st.fixed_dictionaries({}, optional=query)))
    return st.one_of(cases).map(
        lambda case: (case[0].replace("{service_id}", case[1] or "db"), case[2])
    )


# derandomize: CI runs the same examples every time, so a new find cannot turn main red
# at random; drop derandomize locally to search further.
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(request=_requests())
def test_no_request_to_a_documented_route_gets_a_500(
    c: FlaskClient, request: tuple[str, dict[str, str]]
) -> None:
    path, query = request
    response = c.get(path, query_string=query)
    assert response.status_code < 500, (path, query, response.get_data(as_text=True))
    assert response.is_json


def test_prometheus_metrics_expose_status_per_service(c: FlaskClient) -> None:
    body = c.get("/metrics").get_data(as_text=True)
    families: dict[str, Any] = {f.name: f for f in text_string_to_metric_families(body)}
    status = {s.labels["service"]: s.value for s in families["lightbulb_service_status"].samples}
    assert status == {"db": 2, "api": 2, "web": 0, "lightbulb": 5}
    up = {s.labels["service"]: s.value for s in families["lightbulb_service_up"].samples}
    assert up["web"] == 1 and up["db"] == 0


def test_errors_api_returns_patterns_by_count(c: FlaskClient) -> None:
    body = c.get("/api/v1/errors?range=24h").get_json()
    assert [(p["pattern"], p["count"], p["services"]) for p in body["patterns"]] == [
        ("pool exhausted", 3, ["db"])
    ]
    assert c.get("/api/v1/errors?service=web").get_json()["patterns"] == []


@pytest.mark.parametrize("text", ["\t", "a\nb", "back\\slash", "\\N", "it's", "\r\x00"])
def test_control_characters_in_parameters_are_data(c: FlaskClient, text: str) -> None:
    response = c.get("/api/v1/services/db/logs", query_string={"q": text})
    assert response.status_code == 200 and response.get_json()["logs"] == []
    assert c.get("/api/v1/services/db/metrics", query_string={"name": text}).status_code == 200
