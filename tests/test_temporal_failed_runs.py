"""Each failed run is one service_logs row, in every mode that sees runs (real dev server).

The attack: 8+ failed runs of a workflow type and a schedule whose runs failed every
30 s left no row at all; only ``workflow_id`` mode logged its failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from checkers.base import CheckContext, Status
from checkers.temporal_schedule import ScheduleSettings, TemporalScheduleChecker
from checkers.temporal_workflow import TemporalSettings, TemporalWorkflowChecker
from server.runner import run_check
from tests.conftest import wait_until
from tests.support.temporal_server import Harness
from tests.support.temporal_workflows import FailsForTheLog


def checks_until(check: Callable[[], Any], rows: int, extra: int = 2) -> list[Any]:
    """Run ``check`` until its results hold ``rows`` log rows in all, then ``extra`` more."""
    results: list[Any] = []
    assert wait_until(
        lambda: results.append(check()) or sum(len(r.logs) for r in results) >= rows, 60
    ), [r.message for r in results[-3:]]
    results += [check() for _ in range(extra)]
    return results


def test_each_failed_run_of_a_workflow_type_is_logged_once(temporal_server: Harness) -> None:
    queue = f"failed-{uuid.uuid4().hex[:8]}"
    c = TemporalWorkflowChecker(
        TemporalSettings(address=temporal_server.address, workflow_type="FailsForTheLog")
    )

    def check() -> Any:
        return run_check(c, CheckContext("type", datetime.now(UTC), 10))

    first = check()  # before any run: starts the clock, logs nothing
    with temporal_server.worker(queue, [FailsForTheLog]):
        ids = [temporal_server.start(FailsForTheLog.run, queue=queue) for _ in range(3)]
        results = checks_until(check, 3)
    rows = [e for r in results for e in r.logs]
    assert first.logs == []
    assert sorted(e.context["workflow_id"] for e in rows) == sorted(ids)  # once each
    assert {e.message for e in rows} == {
        f"workflow {wid} failed: ledger out of balance" for wid in ids
    }
    assert {(e.level, e.error_code) for e in rows} == {("ERROR", "LedgerError")}
    assert results[-1].status == Status.FAILED


def test_each_failed_run_of_a_schedule_is_logged_once(temporal_server: Harness) -> None:
    queue = f"failed-{uuid.uuid4().hex[:8]}"
    sid = f"fails-{uuid.uuid4().hex[:8]}"
    c = TemporalScheduleChecker(ScheduleSettings(address=temporal_server.address, schedule_id=sid))

    def check() -> Any:
        return run_check(c, CheckContext("sch", datetime.now(UTC), 10))

    with temporal_server.worker(queue, [FailsForTheLog]):
        handle = temporal_server.run(
            temporal_server.client.create_schedule(
                sid,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        FailsForTheLog.run, id=f"{sid}-wf", task_queue=queue
                    ),
                    spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=2))]),
                ),
            )
        )
        try:
            first = check()
            results = checks_until(check, 3)
            actions = temporal_server.run(handle.describe()).info.recent_actions
        finally:
            temporal_server.run(handle.delete())
    rows = [e for r in [first, *results] for e in r.logs]
    logged = [(e.context["workflow_id"], e.context["run_id"]) for e in rows]
    assert len(logged) == len(set(logged)) >= 3  # each run once
    ran = {(a.action.workflow_id, a.action.first_execution_run_id) for a in actions}
    assert set(logged[-3:]) <= ran
    assert all(e.message.endswith("failed: ledger out of balance") for e in rows)
    assert all(e.context["workflow_id"].startswith(f"{sid}-wf") for e in rows)


def test_a_check_cut_while_reading_a_failure_leaves_that_run_to_the_next_check(
    temporal_server: Harness, monkeypatch: Any
) -> None:
    """The deadline cuts a check (the server frozen) while it reads a failed run's
    history: no row was produced, so the run is not taken as logged; the next checks
    log every run once."""
    from checkers.temporal import TemporalSession

    assert temporal_server.proc is not None
    queue = f"failed-{uuid.uuid4().hex[:8]}"
    c = TemporalWorkflowChecker(
        TemporalSettings(address=temporal_server.address, workflow_type="FailsForTheLog")
    )

    def check(seconds: float = 10) -> Any:
        return run_check(c, CheckContext("type", datetime.now(UTC), seconds))

    check()  # starts the clock
    real = TemporalSession.last_events
    cut: list[Any] = []

    async def last_events(self: TemporalSession, *args: Any) -> Any:
        if not cut:
            cut.append(args)
            temporal_server.freeze()  # stops answering: the deadline cuts the check
        return await real(self, *args)

    with temporal_server.worker(queue, [FailsForTheLog]):
        ids = [temporal_server.start(FailsForTheLog.run, queue=queue) for _ in range(3)]
        monkeypatch.setattr(TemporalSession, "last_events", last_events)
        try:
            assert wait_until(lambda: check(3).status == Status.UNKNOWN and cut, 60)
        finally:
            temporal_server.thaw()
        monkeypatch.undo()
        rows: list[str] = []  # ours: runs of this type closed within LAG by others too

        def logged() -> int:
            rows.extend(e.context["workflow_id"] for e in check().logs)
            return len({r for r in rows if r in ids})

        assert wait_until(lambda: logged() == 3, 60), rows
        logged(), logged()  # and never again
    assert cut[0][0] in ids
    assert sorted(r for r in rows if r in ids) == sorted(ids)  # the one cut too, once
