"""Values past what can be stored and drawn are refused at one place, the same way for
every checker: a real command plugin's perfdata, through the runner and the recorder
into chDB, read by the real app's metrics API and drawn on the service page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckResult, Status
from server.runner import validated
from tests.support.perfdata import plugin_results, recorded

PERFDATA = "'huge'=1e300 'neg'=-1e300 'tiny'=1e-300 'edge'=1e15 'small'=-2.5e-15 ok=5"
REFUSED = {"huge", "neg"}
KEPT = {"edge": 1e15, "small": -2.5e-15, "ok": 5.0, "tiny": 0.0}  # under 1e-15: stored as 0


@pytest.fixture(scope="module")
def results() -> list[CheckResult]:
    return plugin_results("job", PERFDATA)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, results: list[CheckResult]) -> Iterator[Any]:
    with recorded(tmp_path_factory.mktemp("extreme"), "job", results) as client:
        yield client


def test_a_value_past_1e15_is_left_out_and_named_and_one_under_1e_15_is_0(
    results: list[CheckResult],
) -> None:
    result = results[0]
    assert result.status == Status.OK  # the check itself stands
    assert {m.name for m in result.metrics} == set(KEPT)
    refused = result.details["metrics_refused"]
    assert [r.split("=")[0] for r in refused] == ["huge", "neg"]
    assert "beyond ±1e+15" in refused[0]
    assert {m.name: m.value for m in result.metrics} == KEPT


def test_a_column_past_the_limit_is_garbage_like_a_non_finite_one() -> None:
    for value in (1e300, 1e16, float("inf")):
        result = validated(CheckResult(Status.OK, "ok", cpu_usage=value))
        assert result.status == Status.UNKNOWN and "cpu_usage" in result.message, value
    tiny = validated(CheckResult(Status.OK, "ok", cpu_usage=1e-300, response_time_ms=2e-16))
    assert (tiny.status, tiny.cpu_usage, tiny.response_time_ms) == (Status.OK, 0.0, 0.0)


def test_the_metrics_api_answers_what_was_measured_with_max_at_least_avg(
    app: FlaskClient,
) -> None:
    names = app.get("/api/v1/services/job/metrics?range=1h").get_json()["names"]
    assert not REFUSED & set(names) and set(KEPT) <= set(names)
    for name, value in KEPT.items():
        points = app.get(f"/api/v1/services/job/metrics?name={name}&range=1h").get_json()["points"]
        assert points and all(p["max"] >= p["avg"] for p in points), (name, points)
        assert all(p["avg"] == pytest.approx(value) for p in points), (name, points)


def test_every_chart_coordinate_is_a_number_inside_its_box(app: FlaskClient) -> None:
    page = app.get("/services/job?range=1h").get_data(as_text=True)
    charts = re.findall(r'<svg class="chart" viewBox="0 0 (\d+) (\d+)".*?</svg>', page, re.S)
    assert charts
    for svg in re.findall(r'<svg class="chart".*?</svg>', page, re.S):
        width, height = map(float, re.search(r'viewBox="0 0 (\d+) (\d+)"', svg).groups())  # type: ignore[union-attr]
        numbers = [float(v) for v in re.findall(r'(?:cx|cy|y1|y2|x1|x2)="([^"]+)"', svg)]
        for points in re.findall(r'points="([^"]*)"', svg):
            numbers += [float(v) for pair in points.split() for v in pair.split(",")]
        assert numbers and all(-1 <= v <= max(width, height) + 1 for v in numbers), svg[:300]
        ticks = re.findall(r'class="axis tick"[^>]*>([^<]*)<', svg)
        assert all(len(t) <= 12 for t in ticks), ticks
