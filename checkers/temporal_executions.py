"""Running executions that are stuck, and why (``temporal_stuck``, ``temporal_workflow``).

Visibility cannot say whether an execution is stuck, so a check lists the running
executions its query matches and describes at most ``limit`` of them:

- executions carrying ``TemporalReportedProblems`` (server >= 1.30, set after
  ``system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute``
  consecutive workflow-task problems; off by default on a self-hosted server)
  come first, so a server that has it points us at the broken ones among
  thousands; a server that does not know the attribute is remembered and not
  asked again;
- then the first page of all running ones.

Each described execution is judged on what Temporal itself records: a pending
workflow task past its first attempt is failing (the newest WorkflowTaskFailed
or WorkflowTaskTimedOut event says how: a non-determinism error, another
failure, a timeout); a pending activity at ``activity_attempts`` or more is
retrying; a started activity whose last heartbeat is older than
``heartbeat_stale`` is hung. The attribute alone is never trusted: it lags and
may be switched off, so the describe decides.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import (
    EventType,
    PendingActivityState,
    WorkflowExecutionStatus,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.service import RPCError, RPCStatusCode

from checkers.netio import loop_local
from checkers.temporal import TemporalSession, age
from server.core.text import clip

NONDETERMINISM = "nondeterminism"
WORKFLOW_TASK_TIMEOUT = "workflow_task_timeout"
WORKFLOW_TASK_FAILURE = "workflow_task_failure"
ACTIVITY_ATTEMPTS = "activity_attempts"
HEARTBEAT_STALE = "heartbeat_stale"
WORKFLOW_TASK_KINDS = frozenset({NONDETERMINISM, WORKFLOW_TASK_TIMEOUT, WORKFLOW_TASK_FAILURE})
REPORTED_PROBLEMS = "TemporalReportedProblems"
DESCRIBE_CONCURRENCY = 5  # describes in flight per check: bounded so one check cannot flood
HISTORY_EVENTS = 20  # newest events read to find the last workflow-task failure
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Problem:
    """Why one execution is stuck: ``kind`` (a constant above) and a readable ``text``."""

    kind: str
    text: str
    activity_type: str = ""
    failure: str = ""  # the last failure's message, when there is one


@dataclass
class Execution:
    workflow_id: str
    run_id: str
    workflow_type: str
    start_time: datetime | None = None
    reported: tuple[str, ...] = ()  # TemporalReportedProblems values from the listing
    problems: list[Problem] = field(default_factory=list)

    def as_detail(self) -> dict[str, object]:
        first = self.problems[0] if self.problems else None
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "workflow_type": self.workflow_type,
            "kind": first.kind if first else "",
            "reason": "; ".join(p.text for p in self.problems),
            "activity_type": next((p.activity_type for p in self.problems if p.activity_type), ""),
        }


@dataclass
class Sample:
    """The running executions a query matched (``running``) and the ones described."""

    running: int
    executions: list[Execution]
    reported_supported: bool
    timed_out: bool = False  # describes stopped at the check's deadline

    @property
    def cut(self) -> bool:
        return self.running > len(self.executions)

    def stuck(self) -> list[Execution]:
        return [e for e in self.executions if e.problems]


@dataclass(frozen=True)
class Limits:
    """When an execution counts as stuck; None switches a criterion off."""

    activity_attempts: int | None = None
    heartbeat_stale: timedelta | None = None
    activities: bool = True  # False: judge workflow tasks only (temporal_workflow's split)


def _listed(info: WorkflowExecutionInfo) -> Execution:
    reported: tuple[str, ...] = ()
    payload = info.search_attributes.indexed_fields.get(REPORTED_PROBLEMS)
    if payload is not None and payload.data:
        try:
            values = json.loads(payload.data)
        except ValueError:
            values = []
        reported = tuple(str(v) for v in values) if isinstance(values, list) else ()
    started = info.start_time.ToDatetime(tzinfo=UTC) if info.HasField("start_time") else None
    return Execution(
        info.execution.workflow_id, info.execution.run_id, info.type.name, started, reported
    )


async def sample_running(session: TemporalSession, query: str, limit: int) -> Sample:
    """Count the running executions ``query`` matches and describe up to ``limit`` of them.

    ``query`` is a visibility filter without ``ExecutionStatus`` (it is added).
    Two or three visibility calls; ``limit`` describes plus one history read per
    execution whose workflow task is failing.
    """
    running = (
        f"({query}) AND ExecutionStatus = 'Running'" if query else "ExecutionStatus = 'Running'"
    )
    unsupported: set[tuple[str, str]] = loop_local("temporal-no-reported-problems", set)
    key = (session.settings.address, session.namespace)
    chosen: dict[tuple[str, str], Execution] = {}
    if key not in unsupported:
        try:
            page = await session.list_workflows(
                f"{running} AND {REPORTED_PROBLEMS} IS NOT NULL", limit
            )
            for info in page.executions:
                e = _listed(info)
                chosen.setdefault((e.workflow_id, e.run_id), e)
        except RPCError as exc:
            if exc.status != RPCStatusCode.INVALID_ARGUMENT or REPORTED_PROBLEMS not in exc.message:
                raise
            unsupported.add(key)  # the server predates the attribute: never ask again
    total = (await session.count(running)).count
    if len(chosen) < limit:
        for info in (await session.list_workflows(running, limit)).executions:
            e = _listed(info)
            chosen.setdefault((e.workflow_id, e.run_id), e)
    executions = list(chosen.values())[:limit]
    return Sample(max(total, len(executions)), executions, key not in unsupported)


async def judge_all(
    session: TemporalSession, sample: Sample, limits: Limits, now: datetime
) -> None:
    """Describe each execution of ``sample`` (a few at a time) and fill in its problems.

    When the check's deadline nears (:func:`stop_describing_at`), the describes
    still waiting or in flight are dropped: ``sample.executions`` keeps the ones
    described and ``sample.timed_out`` says the list was cut by time, so the check
    reports what it saw instead of timing out with nothing.
    """
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)
    done: set[int] = set()

    async def one(index: int, e: Execution) -> None:
        async with gate:
            try:
                await judge(session, e, limits, now)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:  # closed and gone since the listing
                    raise
            done.add(index)

    loop = asyncio.get_running_loop()
    tasks = [asyncio.ensure_future(one(i, e)) for i, e in enumerate(sample.executions)]
    if not tasks:
        return
    stop = stop_describing_at(loop.time(), session.deadline)
    finished, pending = await asyncio.wait(tasks, timeout=max(0.0, stop - loop.time()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in finished:
        task.result()  # a describe's error (other than NOT_FOUND) is the check's
    if pending:
        sample.executions = [e for i, e in enumerate(sample.executions) if i in done]
        sample.timed_out = True


def stop_describing_at(now: float, deadline: float) -> float:
    """When describes stop (loop seconds): a tenth of the time left, 0.2 to 1 s, is kept
    to build and return the result before ``deadline``."""
    return deadline - min(1.0, max(0.2, (deadline - now) / 10))


async def judge(session: TemporalSession, e: Execution, limits: Limits, now: datetime) -> None:
    """Fill ``e.problems`` from a describe (and the newest history events when needed)."""
    desc = await session.describe_workflow(e.workflow_id, e.run_id)
    if (
        desc.workflow_execution_info.status
        != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    ):
        return
    task = desc.pending_workflow_task
    if desc.HasField("pending_workflow_task") and task.attempt >= 2:
        events = await session.last_events(e.workflow_id, e.run_id, HISTORY_EVENTS)
        e.problems.append(workflow_task_problem(events, task.attempt))
    if not limits.activities:
        return
    for activity in desc.pending_activities:
        name = activity.activity_type.name
        failure = _first_line(activity.last_failure.message)
        if limits.activity_attempts is not None and activity.attempt >= limits.activity_attempts:
            text = f"activity {name} attempt {activity.attempt}" + (
                f": {failure}" if failure else ""
            )
            e.problems.append(Problem(ACTIVITY_ATTEMPTS, text, name, failure))
            continue
        beat = activity.last_heartbeat_time
        if (
            limits.heartbeat_stale is not None
            and activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            and activity.HasField("last_heartbeat_time")
            and now - beat.ToDatetime(tzinfo=UTC) > limits.heartbeat_stale
        ):
            since = age(now - beat.ToDatetime(tzinfo=UTC))
            text = f"activity {name} last heartbeat {since} ago"
            e.problems.append(Problem(HEARTBEAT_STALE, text, name, failure))


def workflow_task_problem(events: list[HistoryEvent], attempt: int) -> Problem:
    """What the newest workflow-task failure or timeout in ``events`` (newest first) was."""
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = event.workflow_task_failed_event_attributes
            message = _first_line(attrs.failure.message)
            if (
                attrs.cause
                == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
            ):
                text = f"non-determinism error, workflow task attempt {attempt}: {message}"
                return Problem(NONDETERMINISM, text, failure=message)
            cause = WorkflowTaskFailedCause.Name(attrs.cause).removeprefix(
                "WORKFLOW_TASK_FAILED_CAUSE_"
            )
            text = f"workflow task failing ({cause.lower()}), attempt {attempt}: {message}"
            return Problem(WORKFLOW_TASK_FAILURE, text, failure=message)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            text = f"workflow task timed out, attempt {attempt}"
            return Problem(WORKFLOW_TASK_TIMEOUT, text)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            break
    return Problem(WORKFLOW_TASK_FAILURE, f"workflow task failing, attempt {attempt}")


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else ""
    return clip(line, MESSAGE_CHARS)
