"""Each measured quantity is charted and listed once, whatever the check type.

Real checkers (tcp against a local listener, host, python_process on this test's
own process, command) record through the real recorder into chDB; the service page
and ``GET /api/v1/services/<id>/metrics`` are read through the real app.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from checkers.base import CheckContext, Checker
from checkers.command import CommandChecker, CommandSettings
from checkers.host import HostChecker, HostSettings
from checkers.python_process import ProcessSettings, PythonProcessChecker
from checkers.tcp import TcpChecker, TcpSettings
from server.recorder import Recorder
from server.runner import run_check
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows

CHECKS = 6
STEP = timedelta(minutes=1)


class Svc:
    def __init__(self, sid: str, type_: str) -> None:
        self.id, self.type, self.stack = sid, type_, "default"


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.listen(64)
        yield server.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, listener: int) -> Iterator[FlaskClient]:
    root: Path = tmp_path_factory.mktemp("once")
    store = EmbeddedStorage(root / "db", "monitor")
    apply_schema(store, Target("monitor"))
    # a process that is not ours (the checker never watches its own family): sh's child
    # outlives sh and is adopted by init
    spawn = f"{sys.executable} -c 'import time; time.sleep(300)' >/dev/null 2>&1 & echo $!"
    pid = int(
        subprocess.run(["sh", "-c", spawn], check=True, capture_output=True, text=True).stdout
    )
    checkers: dict[str, tuple[str, Checker[Any]]] = {
        "port": ("tcp", TcpChecker(TcpSettings(host="127.0.0.1", port=listener))),
        "box": ("host", HostChecker(HostSettings(mounts=["/"]))),
        "proc": ("python_process", PythonProcessChecker(ProcessSettings(pid=pid))),
        "job": ("command", CommandChecker(CommandSettings(
            command=[sys.executable, "-c", "print('OK | queue=3;;;; age=2s')"]))),
    }  # fmt: skip
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    sink = MemoryRows()
    recorder = Recorder(sink)
    for i in range(CHECKS):
        at = now - STEP * (CHECKS - i)
        for sid, (type_, checker) in checkers.items():
            result = run_check(checker, CheckContext(sid, at, 5.0))
            recorder.record(Svc(sid, type_), result, at)
    sink.insert_into(store)
    config = parse_config(
        f"""
services:
  - {{id: port, type: tcp, interval: 1m, tcp: {{host: 127.0.0.1, port: {listener}}}}}
  - {{id: box, type: host, interval: 1m}}
  - {{id: proc, type: python_process, interval: 1m, python_process: {{name: python}}}}
  - {{id: job, type: command, interval: 1m, command: {{command: "true"}}}}
""",
        "once.yaml",
        {},
    )
    yield create_app(WebContext(config, store, FakeClock(now))).test_client()
    store.close()
    os.kill(pid, signal.SIGTERM)


CHART = re.compile(r'<svg class="chart"[^>]*data-series="([^"]+)"')


def charted(c: FlaskClient, sid: str) -> list[str]:
    page = c.get(f"/services/{sid}?range=1h").get_data(as_text=True)
    return CHART.findall(page)


@pytest.mark.parametrize("sid", ["port", "box", "proc", "job"])
def test_no_quantity_is_charted_twice_under_two_names(app: FlaskClient, sid: str) -> None:
    c = app
    labels = charted(c, sid)
    assert len(labels) == len(set(labels)), labels
    same = {"connect_time_ms": "response_time_ms", "cpu_percent": "cpu_usage",
            "memory_percent": "memory_usage"}  # fmt: skip
    for metric, column in same.items():
        assert not (metric in labels and column in labels), (sid, labels)


@pytest.mark.parametrize("sid", ["port", "box", "proc", "job"])
def test_the_metrics_api_lists_exactly_the_charted_names(app: FlaskClient, sid: str) -> None:
    names = app.get(f"/api/v1/services/{sid}/metrics?range=1h").get_json()["names"]
    labels = charted(app, sid)
    assert len(names) == len(set(names))
    assert set(names) == {label.split("{")[0] for label in labels}
    for name in names:  # every listed name has points
        series = app.get(f"/api/v1/services/{sid}/metrics?name={name}&range=1h").get_json()
        assert any(p["avg"] is not None for p in series["points"]), (sid, name)


def test_a_command_service_lists_no_columns_it_never_filled(app: FlaskClient) -> None:
    names = app.get("/api/v1/services/job/metrics?range=1h").get_json()["names"]
    assert "cpu_usage" not in names and "memory_usage" not in names
    assert {"queue", "age"} <= set(names)


def test_a_process_chart_shows_its_measures_once(app: FlaskClient) -> None:
    labels = charted(app, "proc")
    assert {"cpu_usage", "memory_usage", "rss_bytes"} <= set(labels), labels


def test_a_metric_is_still_served_by_its_own_name(app: FlaskClient) -> None:
    series = app.get("/api/v1/services/port/metrics?name=connect_time_ms&range=1h").get_json()
    assert series["unit"] == "ms" and len(series["points"]) >= 1
