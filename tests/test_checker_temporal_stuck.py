"""temporal_stuck against the session's real dev server and real workers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from checkers.base import CheckContext, Status
from checkers.temporal_stuck import StuckSettings, TemporalStuckChecker
from server.core.text import printable
from server.runner import run_check
from tests.support import temporal_workflows as wf
from tests.support.hostile import HOSTILE_IDS
from tests.support.temporal_server import Harness, until


def checker(server: Harness, **settings: Any) -> TemporalStuckChecker:
    return TemporalStuckChecker(StuckSettings(address=server.address, **settings))


def once(c: TemporalStuckChecker) -> Any:
    return run_check(c, CheckContext("stuck", datetime.now(UTC), 10))


def test_an_activity_failing_forever_is_stuck_and_named_with_its_workflow_id(
    temporal_server: Harness,
) -> None:
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    with temporal_server.worker(queue, [*wf.WORKFLOWS, wf.RetriesForever], wf.ACTIVITIES):
        healthy = temporal_server.start(wf.WaitForever.run, queue=queue)
        wid = temporal_server.start(wf.RetriesForever.run, queue=queue)
        try:
            c = checker(temporal_server, query=f"TaskQueue = '{queue}'")
            first = until(lambda: once(c), lambda r: r.status == Status.DEGRADED)
            later = [once(c) for _ in range(2)]
        finally:
            temporal_server.terminate(healthy, wid)
    assert first.status == Status.DEGRADED
    assert first.message.startswith(f"1 of 2 running stuck: {wid} (activity always_fails attempt ")
    assert first.message.endswith(": downstream API returned 503)")
    assert [e["workflow_id"] for e in first.details["stuck"]] == [wid]
    assert first.details["stuck"][0]["activity_type"] == "always_fails"
    # One service_logs row when the execution became stuck, none while it stays so.
    assert [len(r.logs) for r in [first, *later]] == [1, 0, 0]
    entry = first.logs[0]
    assert entry.level == "WARN" and wid in entry.message
    assert entry.context["activity_types"] == "always_fails"
    assert entry.context["last_failure"] == "downstream API returned 503"
    assert {m.name: m.value for m in first.metrics}["stuck_activity_attempts"] == 1


def test_a_failing_workflow_task_is_found_among_many_through_reported_problems(
    temporal_server: Harness,
) -> None:
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    with temporal_server.worker(queue, [*wf.WORKFLOWS, wf.FailsWorkflowTask], wf.ACTIVITIES):
        broken = temporal_server.start(wf.FailsWorkflowTask.run, queue=queue)
        # Newer executions are listed first: only the server's flag can point at `broken`.
        healthy = [temporal_server.start(wf.WaitForever.run, queue=queue) for _ in range(3)]
        try:
            c = checker(temporal_server, query=f"TaskQueue = '{queue}'", max_describe=1)
            result = until(lambda: once(c), lambda r: r.status == Status.FAILED, seconds=60)
        finally:
            temporal_server.terminate(broken, *healthy)
    assert result.status == Status.FAILED
    assert result.message.startswith(f"1 of 4 running stuck: {broken} (workflow task failing")
    assert "bug in workflow code: division of the ledger by zero" in result.message
    assert result.message.endswith("; described 1 of 4 (max_describe)")
    assert result.details["reported_problems"] is True
    assert result.logs[0].level == "ERROR"


def test_an_activity_whose_heartbeat_went_quiet_is_stuck(temporal_server: Harness) -> None:
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    wf.RELEASE_ACTIVITIES.clear()
    with temporal_server.worker(queue, [wf.HeartbeatHangs], [wf.heartbeats_once_then_hangs]):
        wid = temporal_server.start(wf.HeartbeatHangs.run, queue=queue)
        try:
            c = checker(
                temporal_server,
                workflow_type="HeartbeatHangs",
                query=f"TaskQueue = '{queue}'",
                thresholds={"heartbeat_stale": "2s"},
            )
            result = until(lambda: once(c), lambda r: r.status == Status.DEGRADED)
        finally:
            wf.RELEASE_ACTIVITIES.set()
            temporal_server.terminate(wid)
    assert result.status == Status.DEGRADED
    assert result.message.startswith(
        f"1 of 1 running stuck: {wid} (activity heartbeats_once_then_hangs last heartbeat "
    )
    assert result.details["stuck"][0]["kind"] == "heartbeat_stale"


def test_nothing_stuck_is_ok_and_says_how_many_were_looked_at(temporal_server: Harness) -> None:
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    ids = [temporal_server.start(wf.WaitForever.run, queue=queue) for _ in range(2)]
    try:
        c = checker(temporal_server, query=f"TaskQueue = '{queue}'")
        result = until(lambda: once(c), lambda r: r.details.get("running") == 2)
    finally:
        temporal_server.terminate(*ids)
    assert result.status == Status.OK and result.message == "none of 2 running stuck"
    assert result.logs == []


def test_stuck_settings_need_a_workflow_type_or_a_query() -> None:
    with pytest.raises(ValueError, match="set workflow_type, query or both"):
        StuckSettings()
    assert StuckSettings(workflow_type="A", query="TaskQueue='q'").visibility_query() == (
        "WorkflowType = 'A' AND (TaskQueue='q')"
    )
    assert StuckSettings(workflow_type="it's").visibility_query() == "WorkflowType = 'it\\'s'"


def test_hostile_workflow_ids_reach_messages_rows_and_details_printable_and_short(
    temporal_server: Harness,
) -> None:
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    suffix = uuid.uuid4().hex[:6]
    raw = [f"{wid}-{suffix}" for wid in HOSTILE_IDS]
    with temporal_server.worker(queue, [*wf.WORKFLOWS, wf.RetriesForever], wf.ACTIVITIES):
        for wid in raw:
            temporal_server.start(wf.RetriesForever.run, queue=queue, id=wid)
        try:
            c = checker(temporal_server, query=f"TaskQueue = '{queue}'")
            result = until(lambda: once(c), lambda r: len(r.details.get("stuck", [])) == 4)
        finally:
            temporal_server.terminate(*raw)
    unsafe = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
    entry = result.logs[0]
    texts = [result.message, entry.message, *entry.context.values()]
    texts += [str(v) for e in result.details["stuck"] for v in e.values()]
    assert [t for t in texts if unsafe.search(t)] == []
    # Every id named in the row's text escaped; the longest one shortened there and in
    # the message ...
    assert "line1\\nERROR forged log line\\r\\nx" in entry.message
    assert "\\u202eevil\\x00nul" in entry.message
    assert "<script>alert(1)</script>" in entry.message  # markup is the page's to escape
    assert "L" * 79 + "\u2026" in entry.message
    assert "L" * 80 not in entry.message and "L" * 80 not in result.message
    # ... and whole (printable) only in structured fields.
    assert sorted(e["workflow_id"] for e in result.details["stuck"]) == sorted(
        printable(wid) for wid in raw
    )
    assert raw[3] in entry.context["workflow_ids"].split(",")


def _cut_after(
    server: Harness, monkeypatch: pytest.MonkeyPatch, workflow: Any, answered_before_freeze: int
) -> Any:
    """Run one check (4 s) on 12 executions of ``workflow`` while the server stops answering
    after ``answered_before_freeze`` describes (one at a time); the check's result."""
    import checkers.temporal_executions as executions
    from checkers.temporal import TemporalSession

    assert server.proc is not None
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    frozen = []
    with server.worker(queue, [*wf.WORKFLOWS, wf.FailsWorkflowTask], wf.ACTIVITIES):
        ids = [server.start(workflow, queue=queue) for _ in range(12)]
        try:
            c = checker(server, query=f"TaskQueue = '{queue}'", max_describe=12)
            until(lambda: once(c), lambda r: r.details.get("running") == 12)
            if workflow is wf.FailsWorkflowTask.run:
                until(lambda: once(c), lambda r: len(r.details.get("stuck", [])) == 12, seconds=60)
            monkeypatch.setattr(executions, "DESCRIBE_CONCURRENCY", 1)
            real = TemporalSession.describe_workflow
            answered: list[str] = []

            async def describe(self: TemporalSession, *args: Any) -> Any:
                if len(answered) == answered_before_freeze and not frozen:
                    server.freeze()
                    frozen.append(True)
                response = await real(self, *args)
                answered.append(args[0])
                return response

            monkeypatch.setattr(TemporalSession, "describe_workflow", describe)
            return run_check(c, CheckContext("stuck", datetime.now(UTC), 4))
        finally:
            if frozen:
                server.thaw()
            monkeypatch.undo()
            server.terminate(*ids)


def test_describes_cut_by_the_deadline_with_nothing_stuck_seen_are_unknown_and_say_so(
    temporal_server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five of twelve seen healthy: the other seven could be stuck, so never OK.
    result = _cut_after(temporal_server, monkeypatch, wf.WaitForever.run, 5)
    assert result.status == Status.UNKNOWN, result.message
    assert result.message == (
        "none stuck among 5 described of 12 running (cut: timed out after 4.0 s;"
        " raise timeout or lower max_describe)"
    )
    assert result.details["cut_by_timeout"] is True
    assert {m.name: m.value for m in result.metrics}["described"] == 5


def test_a_check_that_described_nothing_before_its_deadline_is_unknown(
    temporal_server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack: a tight timeout left no time for any describe, and the check said OK.
    result = _cut_after(temporal_server, monkeypatch, wf.WaitForever.run, 0)
    assert result.status == Status.UNKNOWN, result.message
    assert result.message.startswith("none stuck among 0 described of 12 running (cut: ")
    assert {m.name: m.value for m in result.metrics}["described"] == 0


def test_stuck_ones_seen_before_the_deadline_keep_their_verdict_and_say_the_coverage(
    temporal_server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cut_after(temporal_server, monkeypatch, wf.FailsWorkflowTask.run, 3)
    assert result.status == Status.FAILED, result.message
    assert result.message.startswith("3 of 12 running stuck: ")
    assert result.message.endswith("; described 3 of 12 (cut: timed out after 4.0 s)")
