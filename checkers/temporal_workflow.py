"""``temporal_workflow``: a workflow's state, or the failure ratio of a workflow type.

temporalio is asyncio: checks run on the scheduler's event loop under the
check's deadline, and one client per (address, namespace, TLS, API key) is
shared by every check on that loop, so a thousand workflow checks hold one
gRPC connection. A failed run's error and stack trace are logged once, on the
first check that sees it, not on every check after.

``poller_grace`` has a floor of 90 s: Temporal records a poller's last access
when its long poll starts, and an idle worker's poll lasts about a minute, so a
shorter grace reports a live but idle worker as "no workers".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from checkers.base import (
    CheckContext,
    Checker,
    CheckResult,
    LogEntry,
    Metric,
    Settings,
    Status,
    invalid,
    worst,
)
from checkers.netio import loop_local
from server.core.secret import SecretStr
from server.core.units import Duration, DurationRange

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


class RatioThresholds(Settings):
    degraded_failure_ratio: float = Field(0.05, ge=0, le=1)
    failed_failure_ratio: float = Field(0.25, ge=0, le=1)


class TemporalSettings(Settings):
    address: str = "localhost:7233"
    namespace: str = "default"
    tls: bool = False
    api_key: SecretStr | None = None
    workflow_id: str | None = None
    workflow_type: str | None = None
    window: Annotated[Duration, DurationRange("1m", "30d")] = timedelta(hours=1)
    thresholds: RatioThresholds = RatioThresholds()
    task_queue: str | None = None
    # Floor (90 s) checked below with its reason; the range gives the ceiling.
    poller_grace: Annotated[Duration, DurationRange("1s", "1d")] = timedelta(minutes=2)
    max_activity_attempts: int | None = Field(None, ge=1, le=1000)

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


async def shared_client(s: TemporalSettings) -> Client:
    """The running loop's client for this server and namespace, connected on first use."""
    clients: dict[tuple[str, str, bool, str], Client] = loop_local("temporal-clients", dict)
    key = (s.address, s.namespace, s.tls, s.api_key.reveal() if s.api_key else "")
    if key not in clients:
        clients[key] = await Client.connect(
            s.address, namespace=s.namespace, tls=s.tls, api_key=key[3] or None
        )
    return clients[key]


class TemporalWorkflowChecker(Checker[TemporalSettings]):
    Settings = TemporalSettings
    timeout_status = Status.UNKNOWN  # we lost sight of the server, not of the workflow

    def __init__(self, settings: TemporalSettings) -> None:
        super().__init__(settings)
        self._failure_logged: str | None = None  # run id whose failure is in the logs already

    def describe(self) -> str:
        return f"Temporal at {self.settings.address}"

    async def check_async(self, ctx: CheckContext) -> CheckResult:
        try:
            return await self._check(ctx)
        except RPCError as exc:
            return CheckResult(Status.UNKNOWN, f"{self.describe()}: {exc.message}")
        except RuntimeError as exc:  # connection failures surface as RuntimeError in the SDK
            return CheckResult(Status.UNKNOWN, f"{self.describe()}: {exc}"[:500])

    async def _check(self, ctx: CheckContext) -> CheckResult:
        client = await shared_client(self.settings)
        if self.settings.workflow_id is not None:
            result = await self._describe(client, self.settings.workflow_id)
        else:
            result = await self._ratio(client, ctx.now)
        if self.settings.task_queue is not None:
            queue = await self._pollers(client, ctx.now)
            if queue is not None:
                result.status = worst((result.status, queue.status))
                result.message = (
                    f"{queue.message}; {result.message}" if queue.status else result.message
                )
                result.metrics.extend(queue.metrics)
        return result

    async def _describe(self, client: Client, workflow_id: str) -> CheckResult:
        handle = client.get_workflow_handle(workflow_id)  # latest run: follows continue-as-new
        desc = await handle.describe()
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
            entry = await self._failure(handle, word)
            if entry is not None:
                result.message = f"workflow {workflow_id} {word}: {entry.message}"
                if self._failure_logged != desc.run_id:  # each run's failure is logged once
                    self._failure_logged = desc.run_id
                    result.logs.append(entry)
        if status == WorkflowExecutionStatus.RUNNING:
            self._activities(desc.raw_description.pending_activities, result)
        return result

    async def _failure(self, handle: Any, word: str) -> LogEntry | None:
        """The closing event's failure (message, stack trace) or termination reason."""
        last = None
        async for event in handle.fetch_history_events():
            last = event
        if last is None:
            return None
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

    async def _ratio(self, client: Client, now: datetime) -> CheckResult:
        s = self.settings
        since = (now - s.window).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        base = f"WorkflowType = {quote(s.workflow_type or '')} AND StartTime > {quote(since)}"
        counts = {}
        for word, status in (
            ("Running", "Running"),
            ("Failed", "Failed"),
            ("Completed", "Completed"),
            ("TimedOut", "TimedOut"),
            ("Terminated", "Terminated"),
        ):
            found = await client.count_workflows(f"{base} AND ExecutionStatus = {quote(status)}")
            counts[word] = found.count
        failed = counts["Failed"] + counts["TimedOut"] + counts["Terminated"]
        closed = failed + counts["Completed"]
        ratio = failed / closed if closed else 0.0
        metrics = [
            Metric("running_count", counts["Running"], "count"),
            Metric("failed_count", failed, "count"),
            Metric("completed_count", counts["Completed"], "count"),
            Metric("failure_ratio", round(ratio, 4), "ratio"),
        ]
        details = {"window": str(s.window), **counts, "failure_ratio": round(ratio, 4)}
        summary = (
            f"{s.workflow_type}: {failed}/{closed} failed in the last {s.window} ({ratio:.0%})"
        )
        if closed and ratio >= s.thresholds.failed_failure_ratio:
            return CheckResult(Status.FAILED, summary, details, metrics=metrics)
        if closed and ratio >= s.thresholds.degraded_failure_ratio:
            return CheckResult(Status.DEGRADED, summary, details, metrics=metrics)
        return CheckResult(Status.OK, summary, details, metrics=metrics)

    async def _pollers(self, client: Client, now: datetime) -> CheckResult | None:
        s = self.settings
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=s.namespace,
                task_queue=TaskQueue(name=s.task_queue or ""),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
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


def quote(value: str) -> str:
    """A visibility-query string literal (the query language has no parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
