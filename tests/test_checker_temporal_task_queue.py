"""temporal_task_queue against the session's real dev server and real workers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueueStats

from checkers.base import CheckContext, Status
from checkers.netio import close_loop_resources
from checkers.temporal import TemporalSession, shared_client
from checkers.temporal_task_queue import (
    NO_STATS,
    QueueView,
    TaskQueueSettings,
    TemporalTaskQueueChecker,
    describe_enhanced,
    describe_queue,
    judge,
)
from server.runner import run_check
from tests.support import temporal_workflows as wf
from tests.support.temporal_server import Harness, until


def check(server: Harness, **settings: Any) -> Any:
    checker = TemporalTaskQueueChecker(TaskQueueSettings(address=server.address, **settings))
    return run_check(checker, CheckContext("tq", datetime.now(UTC), 10))


def value(result: Any, name: str, kind: str = "workflow") -> float | None:
    found = [
        m.value for m in result.metrics if m.name == name and m.tags["task_queue_type"] == kind
    ]
    return found[0] if found else None


def test_a_queue_without_workers_builds_a_backlog_then_a_worker_drains_it(
    temporal_server: Harness,
) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    ids = [temporal_server.start(wf.CompletesAtOnce.run, queue=queue) for _ in range(3)]
    first = until(
        lambda: check(temporal_server, task_queue=queue),
        lambda r: (
            (value(r, "approximate_backlog_count") or 0) >= 1
            and (value(r, "approximate_backlog_age") or 0) > 0
        ),
    )
    assert first.status == Status.FAILED
    assert first.message.startswith(f"workflow task queue {queue}: no workers polling (")
    assert value(first, "pollers") == 0
    older = until(
        lambda: check(temporal_server, task_queue=queue),
        lambda r: (
            (value(r, "approximate_backlog_age") or 0)
            > (value(first, "approximate_backlog_age") or 0)
        ),
    )
    assert (value(older, "approximate_backlog_age") or 0) > (
        value(first, "approximate_backlog_age") or 0
    ), "the oldest task's age grows while nobody polls"
    assert older.status == Status.FAILED
    with temporal_server.worker(queue, wf.WORKFLOWS, wf.ACTIVITIES):
        drained = until(
            lambda: check(temporal_server, task_queue=queue),
            lambda r: r.status == Status.OK and value(r, "approximate_backlog_count") == 0,
        )
        handles = [temporal_server.client.get_workflow_handle(i) for i in ids]
        assert [temporal_server.run(h.result()) for h in handles] == ["done"] * 3
    assert drained.status == Status.OK
    assert value(drained, "pollers") == 1 and value(drained, "approximate_backlog_count") == 0
    assert drained.message == f"workflow task queue {queue}: backlog 0, 1 poller"


def test_both_types_are_reported_apart_and_an_idle_queue_is_not_healthy_on_its_backlog(
    temporal_server: Harness,
) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    result = check(temporal_server, task_queue=queue, task_queue_type="both")
    # An unknown or unloaded queue reports a zero backlog: workers decide.
    assert value(result, "approximate_backlog_count", "workflow") == 0
    assert value(result, "approximate_backlog_count", "activity") == 0
    assert result.status == Status.FAILED
    assert f"workflow task queue {queue}: no workers polling" in result.message
    assert f"activity task queue {queue}: no workers polling" in result.message
    assert set(result.details["queues"]) == {"workflow", "activity"}


def test_a_backlog_older_than_its_threshold_degrades_while_workers_poll(
    temporal_server: Harness,
) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    wf.RELEASE_ACTIVITIES.clear()
    # One activity slot: the first of three activities holds it, two wait in the backlog.
    with temporal_server.worker(
        queue, [wf.FansOut], [wf.holds_a_slot], max_concurrent_activities=1
    ):
        wid = temporal_server.start(wf.FansOut.run, queue=queue)
        try:
            result = until(
                lambda: check(
                    temporal_server,
                    task_queue=queue,
                    task_queue_type="activity",
                    thresholds={"backlog_age_degraded": "2s", "backlog_age_failed": "10m"},
                ),
                lambda r: r.status == Status.DEGRADED,
            )
        finally:
            wf.RELEASE_ACTIVITIES.set()
            temporal_server.terminate(wid)
    assert result.status == Status.DEGRADED
    assert value(result, "approximate_backlog_count", "activity") == 2
    assert f"activity task queue {queue}: oldest task waited" in result.message
    assert "(2 tasks waiting)" in result.message


def _poller(seconds_ago: float, now: datetime) -> PollerInfo:
    stamp = Timestamp()
    stamp.FromDatetime(now - timedelta(seconds=seconds_ago))
    return PollerInfo(last_access_time=stamp, identity="worker@host")


NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
SETTINGS = TaskQueueSettings(task_queue="q")


def test_workers_decide_before_the_backlog_does() -> None:
    backlog = TaskQueueStats(approximate_backlog_count=4)
    empty = TaskQueueStats()
    cases = [
        (QueueView("workflow", [_poller(10, NOW)], empty), Status.OK),
        (QueueView("workflow", [_poller(90, NOW)], empty), Status.OK),  # idle: polls once a min
        (QueueView("workflow", [_poller(90, NOW)], backlog), Status.DEGRADED),
        (QueueView("workflow", [_poller(301, NOW)], empty), Status.FAILED),
        (QueueView("workflow", [], empty), Status.FAILED),
    ]
    assert [judge(v, SETTINGS, NOW).status for v, _ in cases] == [s for _, s in cases]
    degraded = judge(cases[2][0], SETTINGS, NOW)
    assert (
        degraded.message == "workflow task queue q: workers last polled 1m30s ago (4 tasks waiting)"
    )
    assert "no workers: last poll 5m01s ago" in judge(cases[3][0], SETTINGS, NOW).message


def test_a_server_without_stats_is_unknown_with_the_reason_unless_nobody_polls() -> None:
    polled = judge(QueueView("activity", [_poller(5, NOW)], None), SETTINGS, NOW)
    assert polled.status == Status.UNKNOWN and polled.message.endswith(NO_STATS)
    nobody = judge(QueueView("activity", [], None), SETTINGS, NOW)
    assert nobody.status == Status.FAILED


def test_task_queue_settings_need_a_queue_name() -> None:
    with pytest.raises(ValueError):
        TaskQueueSettings(task_queue=" ")
    with pytest.raises(ValueError):
        TaskQueueSettings(task_queue="q", task_queue_type="nexus")


def test_the_enhanced_mode_reads_the_same_backlog_for_servers_without_default_stats(
    temporal_server: Harness,
) -> None:
    # Servers from 1.25 that predate stats in the default mode report them only in the
    # enhanced mode; server 1.32 answers both, so both readings must agree.
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    ids = [temporal_server.start(wf.WaitForever.run, queue=queue) for _ in range(2)]

    async def both() -> Any:
        try:
            settings = TaskQueueSettings(address=temporal_server.address, task_queue=queue)
            client = await shared_client(settings)
            session = TemporalSession(client, settings, asyncio.get_running_loop().time() + 10)
            default = await describe_queue(session, queue, ["workflow", "activity"])
            enhanced = await describe_enhanced(session, queue, ["workflow", "activity"])
            return default, enhanced
        finally:
            await close_loop_resources()

    try:
        default, enhanced = until(
            lambda: asyncio.run(both()),
            lambda pair: all(
                v.stats is not None and v.stats.approximate_backlog_count == 2
                for v in pair[0][:1] + pair[1][:1]
            ),
        )
    finally:
        temporal_server.terminate(*ids)
    assert [v.kind for v in enhanced] == ["workflow", "activity"]
    assert all(v.stats is not None for v in enhanced)
    assert (
        enhanced[0].stats.approximate_backlog_count
        == default[0].stats.approximate_backlog_count
        == 2
    )
    assert enhanced[1].stats.approximate_backlog_count == 0
