"""``temporal_task_queue``: a task queue's backlog, its age and growth, and its workers.

From DescribeTaskQueue with stats reporting (Temporal server >= 1.25): the
approximate backlog count, the age of the oldest task in it, and the rates at
which tasks are added and dispatched (averaged by the server over 30 s; their
difference is the rate the backlog grows, Temporal's BacklogIncreaseRate). Newer
servers answer the default mode with ``stats``; servers from 1.25 that do not are
asked again in the enhanced mode (remembered per server), and a server that
reports no stats at all gives UNKNOWN with that reason rather than a guess.

Workers decide before the backlog does. Temporal unloads a queue that has been
idle for about five minutes, and an unloaded queue reports a zero backlog: a
queue is never called healthy on its backlog alone. No poller at all, or none
seen for more than five minutes, is FAILED "no workers"; with tasks waiting and
the newest poll one to five minutes old, DEGRADED (a live worker with work to do
polls continuously; an idle one refreshes its last access about once a minute,
so the one-minute rule only applies while a backlog exists). Note that the
server caches these statistics for a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from temporalio.api.enums.v1 import DescribeTaskQueueMode, TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueueStats, TaskQueueVersionSelection

from checkers.base import CheckContext, CheckResult, Metric, Settings, Status, invalid, worst
from checkers.netio import loop_local
from checkers.temporal import TemporalChecker, TemporalConnection, TemporalSession, age, ordered
from server.core.units import Duration, DurationRange

POLL_DEGRADED = timedelta(minutes=1)  # newest poll this old, with a backlog: DEGRADED
POLL_FAILED = timedelta(minutes=5)  # newest poll this old (or none): FAILED "no workers"
TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}
NO_STATS = "the server reports no task queue statistics (needs Temporal server 1.25 or later)"


class TaskQueueThresholds(Settings):
    backlog_age_degraded: Annotated[Duration, DurationRange("1s", "30d")] | None = timedelta(
        minutes=1
    )
    backlog_age_failed: Annotated[Duration, DurationRange("1s", "30d")] | None = timedelta(
        minutes=5
    )
    # tasks per second the backlog grows by (add rate - dispatch rate); off by default
    backlog_increase_rate_degraded: float | None = Field(None, gt=0, le=1_000_000)
    backlog_increase_rate_failed: float | None = Field(None, gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _order(self) -> TaskQueueThresholds:
        ordered(
            self,
            ("backlog_age_degraded", "backlog_age_failed", "below"),
            ("backlog_increase_rate_degraded", "backlog_increase_rate_failed", "below"),
        )
        return self


class TaskQueueSettings(TemporalConnection):
    task_queue: str = Field(min_length=1, max_length=1000)
    task_queue_type: Literal["workflow", "activity", "both"] = "workflow"
    thresholds: TaskQueueThresholds = TaskQueueThresholds()

    @field_validator("task_queue")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise invalid("expected a task queue name")
        return value


@dataclass
class QueueView:
    """One task queue type as the server sees it; ``stats`` None when it reports none."""

    kind: str
    pollers: list[PollerInfo]
    stats: TaskQueueStats | None


class TemporalTaskQueueChecker(TemporalChecker[TaskQueueSettings]):
    Settings = TaskQueueSettings

    def kinds(self) -> list[str]:
        chosen = self.settings.task_queue_type
        return list(TYPES) if chosen == "both" else [chosen]

    async def inspect(self, session: TemporalSession, ctx: CheckContext) -> CheckResult:
        views = await describe_queue(session, self.settings.task_queue, self.kinds())
        verdicts = [judge(v, self.settings, ctx.now) for v in views]
        status = worst(v.status for v in verdicts)
        shown = [v for v in verdicts if v.status == status] or verdicts
        return CheckResult(
            status,
            "; ".join(v.message for v in shown),
            details={
                "task_queue": self.settings.task_queue,
                "queues": {v.details["task_queue_type"]: v.details for v in verdicts},
                "visibility_calls": session.visibility_calls,
            },
            metrics=[m for v in verdicts for m in v.metrics],
        )


async def describe_queue(session: TemporalSession, name: str, kinds: list[str]) -> list[QueueView]:
    """Pollers and stats per type: the default mode, else the enhanced mode (older servers)."""
    enhanced: set[tuple[str, str]] = loop_local("temporal-enhanced-queue-mode", set)
    key = (session.settings.address, session.namespace)
    if key not in enhanced:
        views = []
        for kind in kinds:
            response = await session.describe_task_queue(
                task_queue=name, task_queue_type=TYPES[kind], report_stats=True
            )
            stats = response.stats if response.HasField("stats") else None
            views.append(QueueView(kind, list(response.pollers), stats))
        if all(v.stats is not None for v in views):
            return views
        found = await describe_enhanced(session, name, kinds)
        if not any(v.stats is not None for v in found):
            return views  # neither mode has stats: the default mode's pollers are as good
        enhanced.add(key)
        return found
    return await describe_enhanced(session, name, kinds)


async def describe_enhanced(
    session: TemporalSession, name: str, kinds: list[str]
) -> list[QueueView]:
    """The enhanced mode (servers 1.25-1.27 report stats only there): unversioned workers."""
    response = await session.describe_task_queue(
        task_queue=name,
        api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
        versions=TaskQueueVersionSelection(unversioned=True),
        task_queue_types=[TYPES[k] for k in kinds],
        report_stats=True,
        report_pollers=True,
    )
    info = response.versions_info.get("")
    views = []
    for kind in kinds:
        typed = info.types_info.get(TYPES[kind]) if info is not None else None
        if typed is None:
            views.append(QueueView(kind, [], None))
            continue
        stats = typed.stats if typed.HasField("stats") else None
        views.append(QueueView(kind, list(typed.pollers), stats))
    return views


@dataclass
class Verdict:
    status: Status
    message: str
    metrics: list[Metric]
    details: dict[str, Any]


def judge(view: QueueView, s: TaskQueueSettings, now: datetime) -> Verdict:
    """One queue type's status: workers first, then backlog age and growth."""
    tags = {"task_queue": s.task_queue, "task_queue_type": view.kind}
    where = f"{view.kind} task queue {s.task_queue}"
    accessed = [p.last_access_time.ToDatetime(tzinfo=UTC) for p in view.pollers]
    newest = max(accessed, default=None)
    poll_age = now - newest if newest is not None else None
    metrics = [Metric("pollers", len(view.pollers), "count", tags)]
    if poll_age is not None:
        metrics.append(Metric("last_poll_age", round(poll_age.total_seconds(), 3), "s", tags))
    details: dict[str, Any] = {
        "task_queue_type": view.kind,
        "pollers": [
            {"identity": p.identity, "last_access": t.isoformat()}
            for p, t in zip(view.pollers, accessed, strict=True)
        ],
        "stats": view.stats is not None,
    }
    backlog = 0
    summary = f"{len(view.pollers)} poller{'s' if len(view.pollers) != 1 else ''}"
    if view.stats is not None:
        st = view.stats
        backlog = int(st.approximate_backlog_count)
        backlog_age = st.approximate_backlog_age.ToTimedelta()
        growth = float(st.tasks_add_rate) - float(st.tasks_dispatch_rate)
        metrics += [
            Metric("approximate_backlog_count", backlog, "count", tags),
            Metric("approximate_backlog_age", round(backlog_age.total_seconds(), 3), "s", tags),
            Metric("tasks_add_rate", round(float(st.tasks_add_rate), 4), "1/s", tags),
            Metric("tasks_dispatch_rate", round(float(st.tasks_dispatch_rate), 4), "1/s", tags),
            Metric("backlog_increase_rate", round(growth, 4), "1/s", tags),
        ]
        details.update(
            backlog=backlog,
            backlog_age_s=round(backlog_age.total_seconds(), 3),
            tasks_add_rate=round(float(st.tasks_add_rate), 4),
            tasks_dispatch_rate=round(float(st.tasks_dispatch_rate), 4),
        )
        summary = (
            f"backlog {backlog}"
            + (f" (oldest {age(backlog_age)})" if backlog else "")
            + f", {summary}"
        )
    waiting = f" ({backlog} tasks waiting)" if backlog else ""
    if poll_age is None:
        return Verdict(Status.FAILED, f"{where}: no workers polling{waiting}", metrics, details)
    if poll_age > POLL_FAILED:
        message = f"{where}: no workers: last poll {age(poll_age)} ago{waiting}"
        return Verdict(Status.FAILED, message, metrics, details)
    if view.stats is None:
        return Verdict(Status.UNKNOWN, f"{where}: {NO_STATS}", metrics, details)
    found = [(Status.OK, f"{where}: {summary}")]
    if backlog and poll_age > POLL_DEGRADED:
        found.append(
            (Status.DEGRADED, f"{where}: workers last polled {age(poll_age)} ago{waiting}")
        )
    found += over_limits(view.stats, s, where)
    status = worst(code for code, _ in found)
    return Verdict(status, next(m for code, m in found if code == status), metrics, details)


def over_limits(st: TaskQueueStats, s: TaskQueueSettings, where: str) -> list[tuple[Status, str]]:
    """Backlog age and growth against ``thresholds`` (each FAILED before DEGRADED)."""
    t = s.thresholds
    backlog_age = st.approximate_backlog_age.ToTimedelta()
    growth = float(st.tasks_add_rate) - float(st.tasks_dispatch_rate)
    found = []
    for code, limit in (
        (Status.FAILED, t.backlog_age_failed),
        (Status.DEGRADED, t.backlog_age_degraded),
    ):
        if st.approximate_backlog_count and limit is not None and backlog_age >= limit:
            waiting = st.approximate_backlog_count
            text = f"{where}: oldest task waited {age(backlog_age)} ({waiting} tasks waiting)"
            found.append((code, text))
            break
    for code, rate in (
        (Status.FAILED, t.backlog_increase_rate_failed),
        (Status.DEGRADED, t.backlog_increase_rate_degraded),
    ):
        if rate is not None and growth > rate:
            found.append((code, f"{where}: backlog growing by {growth:.2f} tasks/s (> {rate:g})"))
            break
    return found
