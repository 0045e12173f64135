"""``temporal_stuck``: running executions that are not getting anywhere, named.

Which executions: ``workflow_type`` and/or a visibility ``query`` (both: both
must match), running only. At most ``max_describe`` of them are described per
check (executions the server flags with ``TemporalReportedProblems`` first, see
:mod:`checkers.temporal_executions`); the message says when there were more.

Stuck means: a workflow task failing past its first attempt (a non-determinism
error, another failure, or timeouts: FAILED, the execution cannot progress), or a
pending activity at ``thresholds.activity_attempts`` or more, or a started
activity whose last heartbeat is older than ``thresholds.heartbeat_stale``
(DEGRADED: it may still recover). The message and, whenever the set of stuck
executions changes, one ``service_logs`` row name the first workflow ids with
their activity types and last failures; ``details.stuck`` lists them all (the
dashboard links each to the Temporal UI).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from checkers.base import (
    CheckContext,
    CheckResult,
    LogEntry,
    Metric,
    Settings,
    Status,
    invalid,
    timed_out_message,
)
from checkers.temporal import TemporalChecker, TemporalConnection, TemporalSession, quote
from checkers.temporal_executions import (
    ACTIVITY_ATTEMPTS,
    HEARTBEAT_STALE,
    NONDETERMINISM,
    WORKFLOW_TASK_FAILURE,
    WORKFLOW_TASK_KINDS,
    WORKFLOW_TASK_TIMEOUT,
    Execution,
    Limits,
    judge_all,
    sample_running,
)
from checkers.temporal_text import query_problem
from server.core.text import clip, shown
from server.core.units import Duration, DurationRange

NAMED_IN_MESSAGE = 3
NAMED_IN_LOG = 10


class StuckThresholds(Settings):
    activity_attempts: int | None = Field(5, ge=2, le=1_000_000)
    heartbeat_stale: Annotated[Duration, DurationRange("1s", "7d")] | None = timedelta(minutes=5)


class StuckSettings(TemporalConnection):
    workflow_type: str | None = None
    query: str | None = None
    thresholds: StuckThresholds = StuckThresholds()
    max_describe: int = Field(20, ge=1, le=1000)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        problem = query_problem(value) if value else None
        if problem:
            raise invalid(f"expected a visibility query: {problem}")
        return value

    @model_validator(mode="after")
    def _some_target(self) -> StuckSettings:
        if not (self.workflow_type or "").strip() and not (self.query or "").strip():
            raise ValueError("set workflow_type, query or both")
        return self

    def visibility_query(self) -> str:
        parts = []
        if self.workflow_type:
            parts.append(f"WorkflowType = {quote(self.workflow_type)}")
        if self.query and self.query.strip():
            parts.append(f"({self.query.strip()})")
        return " AND ".join(parts)


def describe_stuck(stuck: list[Execution], limit: int) -> str:
    """``wf-1 (activity charge attempt 12: 503), wf-2 (…)``, the first ``limit`` of them."""
    named = ", ".join(
        f"{shown(e.workflow_id)} ({'; '.join(p.text for p in e.problems)})" for e in stuck[:limit]
    )
    return named + (f" and {len(stuck) - limit} more" if len(stuck) > limit else "")


class TemporalStuckChecker(TemporalChecker[StuckSettings]):
    Settings = StuckSettings

    def __init__(self, settings: StuckSettings) -> None:
        super().__init__(settings)
        self._logged: frozenset[tuple[str, str]] = frozenset()  # the stuck set last logged

    async def inspect(self, session: TemporalSession, ctx: CheckContext) -> CheckResult:
        s = self.settings
        sample = await sample_running(session, s.visibility_query(), s.max_describe)
        limits = Limits(s.thresholds.activity_attempts, s.thresholds.heartbeat_stale)
        await judge_all(session, sample, limits, ctx.now)
        stuck = sample.stuck()
        kinds = {p.kind for e in stuck for p in e.problems}
        status = Status.OK
        if kinds & WORKFLOW_TASK_KINDS:
            status = Status.FAILED
        elif stuck:
            status = Status.DEGRADED
        described = len(sample.executions)
        why = f"cut: {timed_out_message(ctx.timeout)}" if sample.timed_out else "max_describe"
        cut = f"; described {described} of {sample.running} ({why})" if sample.cut else ""
        if stuck:
            named = describe_stuck(stuck, NAMED_IN_MESSAGE)
            message = f"{len(stuck)} of {sample.running} running stuck: {named}{cut}"
        elif sample.timed_out:
            # Seen too little to vouch for the rest: never OK (raise the timeout or
            # lower max_describe). Stuck ones seen keep their worse verdict above.
            status = Status.UNKNOWN
            message = (
                f"none stuck among {described} described of {sample.running} running"
                f" (cut: {timed_out_message(ctx.timeout)};"
                " raise timeout or lower max_describe)"
            )
        else:
            message = f"none of {sample.running} running stuck{cut}"
        counts = {
            kind: sum(1 for e in stuck if any(p.kind == kind for p in e.problems))
            for kind in (
                NONDETERMINISM,
                WORKFLOW_TASK_FAILURE,
                WORKFLOW_TASK_TIMEOUT,
                ACTIVITY_ATTEMPTS,
                HEARTBEAT_STALE,
            )
        }
        metrics = [
            Metric("stuck", len(stuck), "count"),
            Metric("running", sample.running, "count"),
            Metric("described", described, "count"),
            *(Metric(f"stuck_{kind}", n, "count") for kind, n in counts.items()),
        ]
        result = CheckResult(
            status,
            clip(message, 2000),
            details={
                "namespace": s.namespace,
                "running": sample.running,
                "described": described,
                "cut": sample.cut,
                "cut_by_timeout": sample.timed_out,
                "reported_problems": sample.reported_supported,
                "stuck": [e.as_detail() for e in stuck],
                "visibility_calls": session.visibility_calls,
            },
            metrics=metrics,
        )
        current = frozenset((e.workflow_id, e.run_id) for e in stuck)
        if current != self._logged:
            if current - self._logged:  # new ones: name them once, not on every check
                result.logs.append(self._entry(stuck, status, sample.running))
            self._logged = current
        return result

    def _entry(self, stuck: list[Execution], status: Status, running: int) -> LogEntry:
        first = next((p for e in stuck for p in e.problems if p.failure), None)
        return LogEntry(
            "ERROR" if status == Status.FAILED else "WARN",
            f"{len(stuck)} of {running} running stuck: {describe_stuck(stuck, NAMED_IN_LOG)}",
            "temporal",
            context={
                "workflow_ids": ",".join(e.workflow_id for e in stuck[:NAMED_IN_LOG]),
                "activity_types": ",".join(
                    sorted({p.activity_type for e in stuck for p in e.problems if p.activity_type})
                ),
                **({"last_failure": first.failure} if first else {}),
            },
        )
