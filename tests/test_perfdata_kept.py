"""Every value a plugin prints is accounted for: stored as a metric with its value, or
named in ``metrics_refused`` with the reason. A real command plugin, through the runner
and the recorder into chDB, read back by the real app's metrics API and service page."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckContext, CheckResult, Metric, Status
from checkers.command import CommandChecker, CommandSettings, parse_perfdata
from server.runner import own_names, run_check, validated
from tests.support.perfdata import plugin_results, recorded

# Labels like our status row's columns, values that are no number, and plain ones.
PERFDATA = (
    "cpu_usage=50% memory_usage=10%;80;90 response_time_ms=5ms "
    "a=nan b=-inf c=U d=1.2.3 e=0,5s f= g=1e999 h=NaN% i=1e300 load=0.25"
)
KEPT = {"perf_cpu_usage": 50.0, "perf_memory_usage": 10.0, "perf_response_time_ms": 5.0,
        "load": 0.25}  # fmt: skip
REFUSED = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]  # i: too large, by the runner


@pytest.fixture(scope="module")
def results() -> list[CheckResult]:
    found = plugin_results("cmdcols", PERFDATA)
    for result in found:
        result.response_time_ms = 3  # the run time, as a fast plugin's is: not the 5 ms printed
    return found


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, results: list[CheckResult]) -> Iterator[Any]:
    with recorded(tmp_path_factory.mktemp("perfkept"), "cmdcols", results) as client:
        yield client


def test_every_printed_label_is_a_metric_with_its_value_or_refused_with_a_reason(
    results: list[CheckResult],
) -> None:
    result = results[0]
    assert result.status == Status.OK  # the check stands
    assert {m.name: m.value for m in result.metrics} == KEPT
    refused = result.details["metrics_refused"]
    assert [r.split("=")[0] for r in refused] == REFUSED
    assert all(r.split(": ", 1)[1] for r in refused)  # each with its reason
    assert "a=nan: not a number (NaN)" in refused and "b=-inf: not a finite number" in refused
    assert "g=1e999: beyond ±1e+15" in refused


def test_a_metric_named_like_a_column_with_its_own_value_is_kept_prefixed_and_said(
    results: list[CheckResult],
) -> None:
    renamed = results[0].details["metrics_renamed"]
    assert [r.split(":")[0] for r in renamed] == [
        "cpu_usage -> perf_cpu_usage", "memory_usage -> perf_memory_usage",
        "response_time_ms -> perf_response_time_ms"]  # fmt: skip
    assert "the cpu_usage column holds no value" in renamed[0]


def test_the_api_lists_and_answers_each_kept_metric_with_its_value(app: FlaskClient) -> None:
    names = app.get("/api/v1/services/cmdcols/metrics?range=1h").get_json()["names"]
    assert set(KEPT) <= set(names)
    for name, value in KEPT.items():
        got = app.get(f"/api/v1/services/cmdcols/metrics?name={name}&range=1h").get_json()
        assert got["points"] and all(p["avg"] == pytest.approx(value) for p in got["points"])
    rt = app.get("/api/v1/services/cmdcols/metrics?name=response_time_ms&range=1h").get_json()
    assert rt["points"] and all(p["avg"] == 3 for p in rt["points"])  # the column: run time
    page = app.get("/services/cmdcols?range=1h").get_data(as_text=True)
    charted = {c.split("{")[0] for c in re.findall(r'<figure id="chart-([^"]+)"', page)}
    assert set(KEPT) <= charted


def test_a_column_named_metric_repeating_the_column_keeps_its_name() -> None:
    """HTTP's ``response_time_ms`` metric is the column's value: it is the column."""
    result = validated(CheckResult(Status.OK, "200 OK", response_time_ms=42,
                                   metrics=[Metric("response_time_ms", 42, "ms")]))  # fmt: skip
    assert [m.name for m in result.metrics] == ["response_time_ms"]
    assert "metrics_renamed" not in result.details


def test_a_renamed_metric_never_takes_a_name_already_printed() -> None:
    result = CheckResult(Status.OK, "ok", response_time_ms=3)
    metrics = [Metric("response_time_ms", 5, "ms"), Metric("perf_response_time_ms", 7, "ms"),
               Metric("cpu_usage", 1.0, "percent", {"core": "0"})]  # fmt: skip
    kept, renamed = own_names(result, metrics)
    assert [(m.name, m.value) for m in kept] == [
        ("perf_perf_response_time_ms", 5),
        ("perf_response_time_ms", 7),
        ("perf_cpu_usage", 1.0),
    ]
    assert len(renamed) == 2


def test_perfdata_parsing_alone_names_what_it_cannot_read() -> None:
    metrics, refused = parse_perfdata("x=nan y=2 'z z'=U")
    assert [(m.name, m.value) for m in metrics] == [("y", 2.0)]
    assert refused == ["x=nan: not a number (NaN)",
                       "z z=U: undetermined (U): the plugin could not measure it"]  # fmt: skip


def test_past_ten_refusals_the_rest_are_counted_not_dropped_unsaid() -> None:
    output = "print('OK | ' + ' '.join(f'n{i}=nan' for i in range(14)))"
    plugin = CommandChecker(CommandSettings(command=[sys.executable, "-c", output]))
    result = run_check(plugin, CheckContext("many", datetime.now(UTC), 10.0))
    refused = result.details["metrics_refused"]
    assert len(refused) == 10 and refused[-1] == "and 5 more", refused


def test_every_chart_title_is_distinct_whatever_the_labels_hold() -> None:
    """Names a page would show alike (braces read as tags, a leading space collapsed)."""
    from server.core.measures import unit_of
    from server.web.series import Series

    tags = (("warn", "1"), ("crit", "2"))
    series = [
        Series('my label{warn="1",crit="2"}', unit_of("x"), []),
        Series("my label", unit_of("x"), [], tags),
        Series(" lead", unit_of("x"), []),
        Series("lead", unit_of("x"), []),
        Series("a  b", unit_of("x"), []),
        Series("a b", unit_of("x"), []),
        Series("disk", unit_of("x"), [], (("mount", 'x",y="z'),)),
        Series("disk", unit_of("x"), [], (("mount", "x"), ("y", "z"))),
    ]
    shown = [" ".join(s.label.split()) for s in series]  # as HTML lays the text out
    assert len(set(shown)) == len(shown), shown
    assert series[0].label == '"my label{warn=\\"1\\",crit=\\"2\\"}"'
    assert series[1].label == 'my label{warn="1",crit="2"}' and series[5].label == "a b"
