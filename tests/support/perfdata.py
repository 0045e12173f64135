"""A real command plugin printing perfdata, run through the runner and recorded into chDB:
what the tests of refused and kept metric values share."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient

from checkers.base import CheckContext, CheckResult
from checkers.command import CommandChecker, CommandSettings
from server.recorder import Recorder
from server.runner import run_check
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.support.clock import FakeClock
from tests.support.rows import MemoryRows


@dataclass(frozen=True)
class Svc:
    """The service a result is recorded for: a command check in the default stack."""

    id: str
    type: str = "command"
    stack: str = "default"


def plugin_results(service_id: str, perfdata: str, runs: int = 3) -> list[CheckResult]:
    """``runs`` checks of a plugin printing ``OK | <perfdata>``, each through the runner."""
    plugin = CommandChecker(CommandSettings(
        command=[sys.executable, "-c", f'print("OK | {perfdata}")']))  # fmt: skip
    now = datetime.now(UTC)
    return [run_check(plugin, CheckContext(service_id, now, 10.0)) for _ in range(runs)]


@contextlib.contextmanager
def recorded(root: Path, service_id: str, results: list[CheckResult]) -> Iterator[FlaskClient]:
    """``results`` recorded a minute apart, up to now, into a chDB store under ``root``;
    yields a test client of the app over it (its service ``service_id``, interval 1m)."""
    store = EmbeddedStorage(root / "db", "monitor")
    apply_schema(store, Target("monitor"))
    now = datetime.now(UTC).replace(microsecond=0)
    sink = MemoryRows()
    recorder = Recorder(sink)
    for i, result in enumerate(results):
        recorder.record(Svc(service_id), result, now - timedelta(minutes=len(results) - i))
    sink.insert_into(store)
    config = parse_config(
        f"services:\n  - {{id: {service_id}, type: command, interval: 1m, "
        'command: {command: "true"}}\n',
        f"{service_id}.yaml",
        {},
    )
    try:
        yield create_app(WebContext(config, store, FakeClock(now))).test_client()
    finally:
        store.close()
