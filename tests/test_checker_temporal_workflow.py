"""The temporal_workflow checker against a real `temporal server start-dev` and a real worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checkers.base import CheckContext, CheckResult, Status
from checkers.temporal_workflow import TemporalSettings, TemporalWorkflowChecker
from server.runner import run_check
from tests.conftest import free_port, wait_until
from tests.support import temporal_workflows as wf
from tests.support.temporal_server import Harness, until

QUEUE = "lightbulb-test"


class Temporal:
    """The session's dev server with a worker on QUEUE for this module's workflows."""

    def __init__(self, server: Harness) -> None:
        self.server = server
        self.address = server.address
        self.client = server.client
        self.run = server.run

    def start(self, workflow: Any, *args: Any, **kwargs: Any) -> str:
        return self.server.start(workflow, *args, queue=QUEUE, **kwargs)


@pytest.fixture(scope="module")
def temporal(temporal_server: Harness) -> Iterator[Temporal]:
    with temporal_server.worker(QUEUE, wf.WORKFLOWS, wf.ACTIVITIES):
        yield Temporal(temporal_server)


def check(temporal: Temporal, timeout: float = 10, **settings: Any) -> Any:
    checker = TemporalWorkflowChecker(TemporalSettings(address=temporal.address, **settings))
    return run_check(checker, CheckContext("wf", datetime.now(UTC), timeout))


def test_running_workflow_is_ok(temporal: Temporal) -> None:
    wid = temporal.start(wf.WaitForever.run)
    result = check(temporal, workflow_id=wid)
    assert result.status == Status.OK and result.message == f"workflow {wid} running"


def test_failed_workflow_logs_message_and_stack_trace(temporal: Temporal) -> None:
    wid = temporal.start(wf.FailsAtOnce.run)
    result = until(lambda: check(temporal, workflow_id=wid), lambda r: r.status == Status.FAILED)
    assert result.status == Status.FAILED
    assert "payment ledger out of balance" in result.message
    entry = result.logs[0]
    assert entry.level == "ERROR" and entry.error_code == "LedgerError"
    assert entry.stack_trace and "temporal_workflows.py" in entry.stack_trace


def test_completed_workflow_is_stopped(temporal: Temporal) -> None:
    wid = temporal.start(wf.CompletesAtOnce.run)
    result = until(lambda: check(temporal, workflow_id=wid), lambda r: r.status != Status.OK)
    assert result.status == Status.STOPPED and result.message.endswith("completed")


def test_terminated_workflow_is_failed_with_reason(temporal: Temporal) -> None:
    wid = temporal.start(wf.WaitForever.run)
    temporal.run(
        temporal.client.get_workflow_handle(wid).terminate(reason="operator pulled the plug")
    )
    result = check(temporal, workflow_id=wid)
    assert result.status == Status.FAILED
    assert "terminated: operator pulled the plug" in result.message


def test_timed_out_workflow_is_failed(temporal: Temporal) -> None:
    wid = temporal.start(wf.SleepsLong.run, execution_timeout=timedelta(seconds=1))
    result = until(lambda: check(temporal, workflow_id=wid), lambda r: r.status != Status.OK)
    assert result.status == Status.FAILED and "timed out" in result.message


def test_continued_as_new_is_followed_to_the_new_run(temporal: Temporal) -> None:
    wid = temporal.start(wf.ContinuesOnce.run, 0)
    first = temporal.run(temporal.client.get_workflow_handle(wid).describe()).run_id
    result = until(
        lambda: check(temporal, workflow_id=wid), lambda r: r.details.get("run_id") != first
    )
    assert result.status == Status.OK and result.details["run_id"] != first


def test_activity_retrying_past_limit_degrades(temporal: Temporal) -> None:
    wid = temporal.start(wf.RetriesActivity.run)
    result = until(
        lambda: check(temporal, workflow_id=wid, max_activity_attempts=3),
        lambda r: r.status == Status.DEGRADED,
    )
    assert result.status == Status.DEGRADED
    assert (
        "always_fails retrying" in result.message
        and "downstream API returned 503" in result.message
    )


def test_task_queue_with_and_without_pollers(temporal: Temporal) -> None:
    wid = temporal.start(wf.WaitForever.run)
    ok = until(
        lambda: check(temporal, workflow_id=wid, task_queue=QUEUE), lambda r: r.status == Status.OK
    )
    assert ok.status == Status.OK
    assert any(m.name == "pollers" and m.value >= 1 for m in ok.metrics)
    none = check(temporal, workflow_id=wid, task_queue="nobody-polls-this")
    assert (
        none.status == Status.FAILED
        and "no workers polling task queue nobody-polls-this" in none.message
    )


def test_failure_ratio_of_a_workflow_type(temporal: Temporal) -> None:
    for _ in range(3):
        temporal.start(wf.FailsAtOnce.run)
    temporal.start(wf.CompletesAtOnce.run)
    result = until(
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


def test_a_failed_runs_failure_is_logged_once_not_on_every_check(temporal: Temporal) -> None:
    wid = temporal.start(wf.FailsAtOnce.run)
    checker = TemporalWorkflowChecker(TemporalSettings(address=temporal.address, workflow_id=wid))

    def once() -> Any:
        return run_check(checker, CheckContext("wf", datetime.now(UTC), 10))

    first = until(once, lambda r: r.status == Status.FAILED)
    later = [once() for _ in range(3)]
    assert [len(r.logs) for r in [first, *later]] == [1, 0, 0, 0]
    assert all("payment ledger out of balance" in r.message for r in later)


def test_poller_grace_under_the_poll_refresh_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="expected at least 90s"):
        TemporalSettings(workflow_id="x", task_queue="q", poller_grace="30s")
    assert TemporalSettings(workflow_id="x").poller_grace == timedelta(minutes=2)


def _metrics(result: Any) -> dict[str, float]:
    return {m.name: m.value for m in result.metrics}


def _history_has(temporal: Temporal, workflow_id: str, field: str) -> bool:
    async def scan() -> bool:
        handle = temporal.client.get_workflow_handle(workflow_id)
        return any([e.HasField(field) async for e in handle.fetch_history_events()])

    return bool(temporal.run(scan()))


def test_a_nondeterminism_error_is_counted_apart_from_failed_runs(temporal: Temporal) -> None:
    server = temporal.server
    queue = f"nde-{uuid.uuid4().hex[:8]}"
    activities = [wf.reserve_stock, wf.charge_card]
    with server.worker(queue, [wf.EvolvingV1], activities):
        wid = server.start("Evolving", queue=queue)
        assert wait_until(
            lambda: _history_has(temporal, wid, "activity_task_completed_event_attributes"), 30
        )
    try:
        # The same workflow name, its first step changed: replaying v1's history fails.
        with server.worker(queue, [wf.EvolvingV2], activities, max_cached_workflows=0):
            server.run(server.client.get_workflow_handle(wid).signal("proceed"))
            result = until(
                lambda: check(temporal, workflow_type="Evolving", window="10m"),
                lambda r: _metrics(r).get("nondeterminism_errors") == 1,
                seconds=40,
            )
    finally:
        server.terminate(wid)
    counts = _metrics(result)
    assert counts["nondeterminism_errors"] == 1
    assert counts["workflow_task_timeouts"] == 0 and counts["workflow_task_failures"] == 0
    assert counts["failed_count"] == 0  # the run never closed: the ratio alone saw nothing
    assert result.status == Status.FAILED
    assert f"1 running blocked by a non-determinism error: {wid}" in result.message
    assert "TMPRL1100" in result.message  # the SDK's own words, from the failed task's event


def test_workflow_task_timeouts_are_counted_and_degrade(temporal: Temporal) -> None:
    server = temporal.server
    queue = f"wft-{uuid.uuid4().hex[:8]}"
    wf.RELEASE_BLOCKED.clear()
    # The blocking workflow holds its worker's loop (debug mode runs workflows there):
    # that worker gets a client and loop of its own.
    blocked = Harness(server.address)
    try:
        with blocked.worker(queue, [wf.BlocksWorkflowTask], debug_mode=True):
            wid = server.start(
                wf.BlocksWorkflowTask.run, queue=queue, task_timeout=timedelta(seconds=1)
            )
            try:
                result = until(
                    lambda: check(temporal, workflow_type="BlocksWorkflowTask", window="10m"),
                    lambda r: _metrics(r).get("workflow_task_timeouts") == 1,
                    seconds=40,
                )
            finally:
                wf.RELEASE_BLOCKED.set()
                server.terminate(wid)
    finally:
        blocked.close()
    counts = _metrics(result)
    assert counts["workflow_task_timeouts"] == 1 and counts["nondeterminism_errors"] == 0
    assert result.status == Status.DEGRADED
    assert f"1 running blocked by workflow task timeouts: {wid}" in result.message


def test_a_running_workflow_whose_workflow_task_keeps_failing_is_failed_by_id(
    temporal_server: Harness,
) -> None:
    # The attack: a run whose workflow task failed 7+ times was "OK running" by
    # workflow_id while workflow_type mode called it FAILED.
    queue = f"wftask-{uuid.uuid4().hex[:8]}"
    with temporal_server.worker(queue, [wf.FailsWorkflowTask]):
        wid = temporal_server.start(wf.FailsWorkflowTask.run, queue=queue)
        try:
            checker = TemporalWorkflowChecker(
                TemporalSettings(address=temporal_server.address, workflow_id=wid)
            )
            seen: list[CheckResult] = []

            def checked() -> CheckResult:
                seen.append(run_check(checker, CheckContext("wf", datetime.now(UTC), 10)))
                return seen[-1]

            result = until(checked, lambda r: r.status != Status.OK, seconds=60)
            again = [checked() for _ in range(2)]  # still failing: told in the logs once
        finally:
            temporal_server.terminate(wid)
    assert result.status == Status.FAILED
    assert result.message.startswith(f"workflow {wid} running, but workflow task failing")
    assert result.message.endswith("bug in workflow code: division of the ledger by zero")
    assert all(r.status == Status.FAILED for r in again)
    logs = [entry for r in seen for entry in r.logs]
    assert len(logs) == 1 and logs[0] in result.logs, logs
    assert (logs[0].level, logs[0].error_code, logs[0].message) == (
        "ERROR", "workflow_task_failure", result.message)  # fmt: skip
    assert logs[0].context["workflow_id"] == wid
    assert logs[0].context["failure"].endswith("division of the ledger by zero")


def test_a_workflow_type_nothing_started_in_the_window_is_unknown(temporal: Temporal) -> None:
    # The attack: workflow_type NoSuchType was "OK 0/0 failed" forever.
    result = check(temporal, workflow_type=f"NoSuchType{uuid.uuid4().hex[:6]}")
    assert result.status == Status.UNKNOWN
    assert result.message.startswith("no NoSuchType")
    assert result.message.endswith(
        "executions started in the last 1:00:00: nothing to judge (check workflow_type, "
        "or widen window)"
    )
