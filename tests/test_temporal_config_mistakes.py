"""Config mistakes against the real dev server: every Temporal type says the same thing.

A namespace that does not exist (like an address nobody listens on) is UNKNOWN with
the reason, for every type. A named object that is not there: a schedule exists
until someone deletes it, so a missing one is FAILED (it will not run); an
execution is forgotten by the server itself after its namespace's retention, so a
missing workflow id is UNKNOWN with both explanations.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from checkers import checker_class
from checkers.base import CheckContext, Status
from server.runner import run_check
from tests.support.temporal_server import Harness

TARGETS: dict[str, dict[str, Any]] = {
    "temporal_workflow/workflow_id": {"workflow_id": "w-1"},
    "temporal_workflow/workflow_type": {"workflow_type": "Payment"},
    "temporal_task_queue": {"task_queue": "payments"},
    "temporal_schedule/schedule_id": {"schedule_id": "nightly"},
    "temporal_schedule/schedule_prefix": {"schedule_prefix": "nightly-"},
    "temporal_stuck": {"workflow_type": "Payment"},
    "temporal_count": {"count_query": "ExecutionStatus = 'Running'"},
}


def run(kind: str, **settings: Any) -> Any:
    cls = checker_class(kind.split("/", maxsplit=1)[0])
    checker = cls(cls.Settings(**settings))
    return run_check(checker, CheckContext("mistake", datetime.now(UTC), 10))


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_a_namespace_that_does_not_exist_is_unknown_saying_so_for_every_type(
    temporal_server: Harness, kind: str
) -> None:
    namespace = f"nope-{uuid.uuid4().hex[:6]}"
    result = run(kind, address=temporal_server.address, namespace=namespace, **TARGETS[kind])
    assert result.status == Status.UNKNOWN, result.message
    assert result.message == (
        f"Temporal at {temporal_server.address}: namespace {namespace} not found "
        "(check the namespace key; `temporal operator namespace list` lists them)"
    )


def test_a_schedule_that_is_not_there_is_failed_and_a_workflow_id_unknown(
    temporal_server: Harness,
) -> None:
    sid, wid = f"gone-{uuid.uuid4().hex[:6]}", f"gone-{uuid.uuid4().hex[:6]}"
    schedule = run("temporal_schedule", address=temporal_server.address, schedule_id=sid)
    workflow = run("temporal_workflow", address=temporal_server.address, workflow_id=wid)
    assert (schedule.status, schedule.message) == (
        Status.FAILED,
        f"schedule {sid} not found (deleted, or never created in namespace default)",
    )
    assert (workflow.status, workflow.message) == (
        Status.UNKNOWN,
        f"workflow {wid} not found in namespace default (never started, or closed "
        "and past the namespace's retention)",
    )


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_a_server_that_stops_answering_reads_timed_out_after_n_s_for_every_type(
    temporal_server: Harness, kind: str
) -> None:
    # temporalio words a call past its gRPC deadline "Timeout expired"; the runner's
    # own deadline says "timed out after 2.0 s". One wording, whichever comes first.
    # freeze() returns once the server has stopped: a call sent while it was still
    # stopping got the true answer (here "workflow w-1 not found"), not a time-out.
    cls = checker_class(kind.split("/", maxsplit=1)[0])
    checker = cls(cls.Settings(address=temporal_server.address, **TARGETS[kind]))

    async def frozen() -> Any:
        # Straight on a loop, without the runner: the gRPC deadline is the only one.
        await checker.check_async(CheckContext("warm", datetime.now(UTC), 10))  # connected
        temporal_server.freeze()
        started = time.monotonic()
        try:
            return await checker.check_async(CheckContext("frozen", datetime.now(UTC), 2))
        finally:
            temporal_server.thaw()
            waited.append(time.monotonic() - started)

    waited: list[float] = []
    direct = asyncio.run(frozen())
    # Every call gets the 2 s left as its gRPC timeout, not the SDK's default of 30 s.
    assert waited[0] < 15, f"the frozen check took {waited[0]:.1f} s"
    run_check(checker, CheckContext("warm", datetime.now(UTC), 10))
    temporal_server.freeze()
    try:
        result = run_check(checker, CheckContext("frozen", datetime.now(UTC), 2))
    finally:
        temporal_server.thaw()
    for r in (direct, result):
        assert r.status == Status.UNKNOWN, r.message
        assert r.message == f"Temporal at {temporal_server.address}: timed out after 2.0 s"
