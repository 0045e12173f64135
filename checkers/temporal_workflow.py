"""``temporal_workflow``: a workflow's state, or the failure ratio of a workflow type.

temporalio is asyncio: checks run on the scheduler's event loop under the
check's deadline, and one client per (address, namespace, TLS, API key) is
shared by every check on that loop, so a thousand workflow checks hold one
gRPC connection. A failed run's error and stack trace are logged once, on the
first check that sees it, not on every check after.

In ``workflow_type`` mode the closed runs of the window are counted with one
``GROUP BY ExecutionStatus`` call (server >= 1.22; older servers are counted
per status), and the running executions of the type (up to ``max_describe``)
are described to count workflow tasks blocked by a non-determinism error, by
timeouts or by other failures separately (:mod:`checkers.temporal_executions`):
Temporal's alerting guide puts non-determinism first, and such executions never
close, so the failure ratio alone would not see them.

``poller_grace`` has a floor of 90 s: Temporal records a poller's last access
when its long poll starts, and an idle worker's poll lasts about a minute, so a
shorter grace reports a live but idle worker as "no workers".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from checkers.base import (
    CheckContext,
    CheckResult,
    LogEntry,
    Metric,
    Settings,
    Status,
    invalid,
    timed_out_message,
    worst,
)
from checkers.netio import loop_local
from checkers.temporal import (
    TemporalChecker,
    TemporalConnection,
    TemporalSession,
    namespace_missing,
    ordered,
    quote,
    shared_client,
)
from checkers.temporal_executions import (
    HISTORY_EVENTS,
    NONDETERMINISM,
    WORKFLOW_TASK_FAILURE,
    WORKFLOW_TASK_TIMEOUT,
    Limits,
    judge_all,
    sample_running,
    workflow_task_problem,
)
from checkers.temporal_failed_runs import FailedRuns
from server.core.text import shown
from server.core.units import Duration, DurationRange

__all__ = ["TemporalSettings", "TemporalWorkflowChecker", "quote", "shared_client"]

POLLER_GRACE_FLOOR = timedelta(seconds=90)

STATE = {
    WorkflowExecutionStatus.RUNNING: (Status.OK, "running"),
    WorkflowExecutionStatus.COMPLETED: (Status.STOPPED, "completed"),
    WorkflowExecutionStatus.CANCELED: (Status.STOPPED, "cancelled"),
    WorkflowExecutionStatus.FAILED: (Status.FAILED, "failed"),
    WorkflowExecutionStatus.TERMINATED: (Status.FAILED, "terminated"),
    WorkflowExecutionStatus.TIMED_OUT: (Status.FAILED, "timed out"),
    WorkflowExecutionStatus.CONTINUED_AS_NEW: (Status.OK, "continued as new"),
}
COUNTED = ("Running", "Failed", "Completed", "TimedOut", "Terminated")
# metric name, the kind of workflow-task problem it counts, the status it gives
TASK_PROBLEMS = (
    ("nondeterminism_errors", NONDETERMINISM, Status.FAILED, "a non-determinism error"),
    ("workflow_task_failures", WORKFLOW_TASK_FAILURE, Status.FAILED, "failing workflow tasks"),
    ("workflow_task_timeouts", WORKFLOW_TASK_TIMEOUT, Status.DEGRADED, "workflow task timeouts"),
)


class RatioThresholds(Settings):
    degraded_failure_ratio: float = Field(0.05, ge=0, le=1)
    failed_failure_ratio: float = Field(0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _order(self) -> RatioThresholds:
        ordered(self, ("degraded_failure_ratio", "failed_failure_ratio", "below"))
        return self


class TemporalSettings(TemporalConnection):
    workflow_id: str | None = None
    workflow_type: str | None = None
    window: Annotated[Duration, DurationRange("1m", "30d")] = timedelta(hours=1)
    thresholds: RatioThresholds = RatioThresholds()
    task_queue: str | None = None
    # Floor (90 s) checked below with its reason; the range gives the ceiling.
    poller_grace: Annotated[Duration, DurationRange("1s", "1d")] = timedelta(minutes=2)
    max_activity_attempts: int | None = Field(None, ge=1, le=1000)
    max_describe: int = Field(20, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_target(self) -> TemporalSettings:
        if (self.workflow_id is None) == (self.workflow_type is None):
            raise ValueError("set exactly one of workflow_id or workflow_type")
        return self

    @field_validator("poller_grace")
    @classmethod
    def _grace_floor(cls, value: timedelta) -> timedelta:
        if value < POLLER_GRACE_FLOOR:
            raise invalid(
                "expected at least 90s: an idle worker's long poll refreshes its last "
                "access only about once a minute"
            )
        return value


class TemporalWorkflowChecker(TemporalChecker[TemporalSettings]):
    Settings = TemporalSettings

    def __init__(self, settings: TemporalSettings) -> None:
        super().__init__(settings)
        self._failure_logged: str | None = None  # run id whose failure is in the logs already
        self._task_problem_logged: tuple[str, str] | None = None  # (run id, kind) logged
        self._runs = FailedRuns()  # workflow_type mode: each failed run logged once

    async def inspect(self, session: TemporalSession, ctx: CheckContext) -> CheckResult:
        if self.settings.workflow_id is not None:
            result = await self._describe(session, self.settings.workflow_id)
        else:
            result = await self._ratio(session, ctx.now)
            await self._workflow_tasks(session, ctx, result)
            base = f"WorkflowType = {quote(self.settings.workflow_type or '')}"
            if self._runs.since is None or result.details.get("failed"):
                result.logs += await self._runs.of_type(session, base, ctx.now)
            else:
                self._runs.since = ctx.now  # nothing failed in the window: nothing to list
        if self.settings.task_queue is not None:
            queue = await self._pollers(session, ctx.now)
            result.status = worst((result.status, queue.status))
            result.message = (
                f"{queue.message}; {result.message}" if queue.status else result.message
            )
            result.metrics.extend(queue.metrics)
        return result

    async def _describe(self, session: TemporalSession, workflow_id: str) -> CheckResult:
        handle = session.client.get_workflow_handle(
            workflow_id
        )  # latest run: follows continue-as-new
        try:
            # The SDK's own default is 30 s (and retries): the check's deadline instead.
            desc = await handle.describe(rpc_timeout=session.time_left())
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or namespace_missing(exc):
                raise
            # The server forgets a closed execution after retention: not a verdict on it.
            return CheckResult(
                Status.UNKNOWN,
                f"workflow {shown(workflow_id)} not found in namespace "
                f"{shown(self.settings.namespace)} (never started, or closed and past the "
                "namespace's retention)",
            )
        status = desc.status or WorkflowExecutionStatus.RUNNING
        code, word = STATE[status]
        details = {
            "workflow_id": workflow_id,
            "run_id": desc.run_id,
            "state": word,
            "type": desc.workflow_type,
        }
        result = CheckResult(code, f"workflow {workflow_id} {word}", details)
        if code == Status.FAILED:
            entry = await self._failure(session, desc, word)
            if entry is not None:
                result.message = f"workflow {workflow_id} {word}: {entry.message}"
                if self._failure_logged != desc.run_id:  # each run's failure is logged once
                    self._failure_logged = desc.run_id
                    result.logs.append(entry)
        if status == WorkflowExecutionStatus.RUNNING:
            self._activities(desc.raw_description.pending_activities, result)
            await self._task_failing(session, desc, result)
        return result

    async def _task_failing(self, session: TemporalSession, desc: Any, result: CheckResult) -> None:
        """A running execution whose workflow task keeps failing is not OK: it cannot
        progress (judged as ``workflow_type`` mode and ``temporal_stuck`` judge it)."""
        raw = desc.raw_description
        if not raw.HasField("pending_workflow_task") or raw.pending_workflow_task.attempt < 2:
            return
        events = await session.last_events(desc.id, desc.run_id, HISTORY_EVENTS)
        problem = workflow_task_problem(events, raw.pending_workflow_task.attempt)
        code = next(status for _, kind, status, _ in TASK_PROBLEMS if kind == problem.kind)
        result.status = worst((result.status, code))
        result.message = f"workflow {shown(desc.id)} running, but {problem.text}"
        result.details["workflow_task_problem"] = problem.kind
        if self._task_problem_logged != (desc.run_id, problem.kind):  # once per run and kind
            self._task_problem_logged = (desc.run_id, problem.kind)
            result.logs.append(
                LogEntry(
                    "ERROR" if code == Status.FAILED else "WARN",
                    result.message,
                    "temporal",
                    error_code=problem.kind,
                    context={"workflow_id": desc.id, "run_id": desc.run_id,
                             **({"failure": problem.failure} if problem.failure else {})},
                )
            )  # fmt: skip

    async def _failure(self, session: TemporalSession, desc: Any, word: str) -> LogEntry | None:
        """The closing event's failure (message, stack trace) or termination reason.

        The closing event is the newest in the history: one reverse read under the
        check's deadline, not every page of a long history.
        """
        events = await session.last_events(desc.id, desc.run_id, 1)
        if not events:
            return None
        last = events[0]
        if last.HasField("workflow_execution_failed_event_attributes"):
            failure = last.workflow_execution_failed_event_attributes.failure
            cause = failure.cause if failure.HasField("cause") else None
            stack = failure.stack_trace or (cause.stack_trace if cause else "")
            message = failure.message + (
                f" (caused by: {cause.message})" if cause and cause.message else ""
            )
            error_type = failure.application_failure_info.type or None
            return LogEntry(
                "ERROR", message, "temporal", error_type, stack or None, {"state": word}
            )
        if last.HasField("workflow_execution_terminated_event_attributes"):
            reason = last.workflow_execution_terminated_event_attributes.reason or "no reason given"
            return LogEntry(
                "ERROR", f"terminated: {reason}", "temporal", None, None, {"state": word}
            )
        return LogEntry("ERROR", f"workflow {word}", "temporal", None, None, {"state": word})

    def _activities(self, pending: Any, result: CheckResult) -> None:
        limit = self.settings.max_activity_attempts
        attempts = [a.attempt for a in pending]
        result.metrics.append(Metric("pending_activities", len(attempts), "count"))
        result.metrics.append(Metric("max_activity_attempt", max(attempts, default=0), "count"))
        if limit is None:
            return
        for activity in pending:
            if activity.attempt > limit:
                result.status = worst((result.status, Status.DEGRADED))
                failure = activity.last_failure.message or "no failure message"
                result.message = (
                    f"activity {activity.activity_type.name} retrying: attempt {activity.attempt} "
                    f"> {limit} ({failure})"
                )
                result.logs.append(LogEntry("WARN", result.message, "temporal"))
                return

    async def _ratio(self, session: TemporalSession, now: datetime) -> CheckResult:
        s = self.settings
        since = (now - s.window).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        base = f"WorkflowType = {quote(s.workflow_type or '')} AND StartTime > {quote(since)}"
        counts = await count_by_status(session, base)
        failed = counts["Failed"] + counts["TimedOut"] + counts["Terminated"]
        closed = failed + counts["Completed"]
        ratio = failed / closed if closed else 0.0
        metrics = [
            Metric("running_count", counts["Running"], "count"),
            Metric("failed_count", failed, "count"),
            Metric("completed_count", counts["Completed"], "count"),
            Metric("failure_ratio", round(ratio, 4), "ratio"),
        ]
        details = {
            "window": str(s.window),
            **counts,
            "failed": failed,
            "failure_ratio": round(ratio, 4),
        }
        summary = (
            f"{s.workflow_type}: {failed}/{closed} failed in the last {s.window} ({ratio:.0%})"
        )
        if not closed and not counts["Running"]:
            # Nothing started in the window: nothing seen, so not OK (a misspelt type
            # would otherwise be "OK 0/0" forever).
            text = f"no {s.workflow_type} executions started in the last {s.window}: nothing to "
            text += "judge (check workflow_type, or widen window)"
            return CheckResult(Status.UNKNOWN, text, details, metrics=metrics)
        if closed and ratio >= s.thresholds.failed_failure_ratio:
            return CheckResult(Status.FAILED, summary, details, metrics=metrics)
        if closed and ratio >= s.thresholds.degraded_failure_ratio:
            return CheckResult(Status.DEGRADED, summary, details, metrics=metrics)
        return CheckResult(Status.OK, summary, details, metrics=metrics)

    async def _workflow_tasks(
        self, session: TemporalSession, ctx: CheckContext, result: CheckResult
    ) -> None:
        """Running executions of the type whose workflow tasks fail, by kind, into ``result``."""
        s = self.settings
        query = f"WorkflowType = {quote(s.workflow_type or '')}"
        sample = await sample_running(session, query, s.max_describe)
        await judge_all(session, sample, Limits(activities=False), ctx.now)
        for metric, kind, status, words in TASK_PROBLEMS:
            hit = [e for e in sample.stuck() if any(p.kind == kind for p in e.problems)]
            result.metrics.append(Metric(metric, len(hit), "count"))
            result.details[metric] = len(hit)
            if hit:
                named = ", ".join(shown(e.workflow_id) for e in hit[:3])
                more = f" and {len(hit) - 3} more" if len(hit) > 3 else ""
                first = next(p.text for p in hit[0].problems if p.kind == kind)
                text = f"{len(hit)} running blocked by {words}: {named}{more} ({first})"
                result.message = f"{result.message}; {text}"
                result.status = worst((result.status, status))
        if sample.cut:
            result.details["described"] = len(sample.executions)
            why = f", cut: {timed_out_message(ctx.timeout)}" if sample.timed_out else ""
            result.message += (
                f" (described {len(sample.executions)} of {sample.running} running{why})"
            )
            if sample.timed_out and result.status == Status.OK:
                result.status = Status.UNKNOWN  # too little seen to call the rest healthy

    async def _pollers(self, session: TemporalSession, now: datetime) -> CheckResult:
        s = self.settings
        response = await session.describe_task_queue(
            task_queue=s.task_queue or "", task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        )
        recent = [
            p
            for p in response.pollers
            if now - p.last_access_time.ToDatetime(tzinfo=UTC) <= s.poller_grace
        ]
        metrics = [Metric("pollers", len(recent), "count", {"task_queue": s.task_queue or ""})]
        if not recent:
            return CheckResult(
                Status.FAILED, f"no workers polling task queue {s.task_queue}", metrics=metrics
            )
        return CheckResult(Status.OK, "", metrics=metrics)


async def count_by_status(session: TemporalSession, query: str) -> dict[str, int]:
    """Executions matching ``query`` per status in COUNTED: one GROUP BY call (server >= 1.22).

    A server that refuses GROUP BY is remembered and counted one status at a time.
    """
    no_group_by: set[tuple[str, str]] = loop_local("temporal-no-group-by", set)
    key = (session.settings.address, session.namespace)
    if key not in no_group_by:
        try:
            response = await session.count(f"{query} GROUP BY ExecutionStatus")
        except RPCError as exc:
            if exc.status != RPCStatusCode.INVALID_ARGUMENT:
                raise
            no_group_by.add(key)
        else:
            counts = dict.fromkeys(COUNTED, 0)
            for group in response.groups:
                values = [json.loads(p.data) for p in group.group_values]
                if values and values[0] in counts:
                    counts[values[0]] = int(group.count)
            return counts
    return {
        word: (await session.count(f"{query} AND ExecutionStatus = {quote(word)}")).count
        for word in COUNTED
    }
