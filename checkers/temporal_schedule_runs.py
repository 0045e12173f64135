"""A schedule's runs: how its last run ended, and a row for each failed run.

Split from :mod:`checkers.temporal_schedule` (which judges the schedule). The last
action's run is described when the schedule's own record of its status is not
final (that record is eventually consistent); a failed run's failure message is
read once per workflow id. Each failed run among the recent actions (the server
keeps the last 10) that started after the checker first saw the schedule is
logged once (:class:`checkers.temporal_failed_runs.FailedRuns`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import WorkflowExecutionStatus as WES
from temporalio.service import RPCError, RPCStatusCode

from checkers.base import LogEntry, Metric, Status, worst
from checkers.temporal import TemporalSession
from checkers.temporal_failed_runs import FailedRuns
from checkers.temporal_schedule_prefix import Judged
from server.core.text import clip, shown

FAILED_RUN = {
    WES.WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
    WES.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed out",
    WES.WORKFLOW_EXECUTION_STATUS_TERMINATED: "was terminated",
}
MAX_REMEMBERED = 256  # failure messages kept, so each closed run's history is read once


def _time(ts: Any) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


class ScheduleRuns(FailedRuns):
    """One schedule checker's memory of runs: failure messages read, runs logged."""

    def __init__(self) -> None:
        super().__init__()
        self._failures: dict[str, str] = {}  # workflow id -> failure message, read once

    async def judged(
        self,
        session: TemporalSession,
        sid: str,
        recent: list[Any],
        *,
        since: datetime | None,
        found: list[tuple[Status, str]],
        metrics: list[Metric],
        details: dict[str, Any],
    ) -> Judged:
        """The schedule's verdict: the worst of ``found`` and its last run's, with the
        rows of failed runs not logged yet (``recent``: actions, oldest first)."""
        verdict = await self.last_run(session, sid, recent[-1]) if recent else None
        if recent:
            details["last_result"] = verdict[2] if verdict else ""
        if verdict:
            found.append(verdict[:2])
        status = worst(code for code, _ in found)
        message = next(m for code, m in reversed(found) if code == status)
        logs = await self.failed_rows(session, recent, verdict[3] if verdict else "", since)
        return Judged(sid, status, message, metrics, details, logs)

    async def failed_rows(
        self, session: TemporalSession, recent: list[Any], last_word: str, since: datetime | None
    ) -> list[LogEntry]:
        """One row per failed run among the recent actions not logged yet, started after
        this checker first saw the schedule (``last_word``: how the last run ended, as
        described, when it failed)."""
        failed = []
        for action in recent:
            run = action.start_workflow_result
            word = FAILED_RUN.get(action.start_workflow_status)
            if action is recent[-1] and last_word:
                word = last_word
            if not word or not run.workflow_id or since is None:
                continue
            if _time(action.actual_time) < since:
                continue  # before our first look: a previous daemon saw it
            failed.append((run.workflow_id, run.run_id, word))
        return await self.rows(session, failed)

    async def last_run(
        self, session: TemporalSession, sid: str, last: Any
    ) -> tuple[Status, str, str, str] | None:
        """(FAILED, message, short result, word) when the last action's run failed; None
        otherwise."""
        name = shown(sid)
        started = last.start_workflow_result
        status = last.start_workflow_status
        if (
            status
            in (WES.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED, WES.WORKFLOW_EXECUTION_STATUS_RUNNING)
            and started.workflow_id
        ):
            try:
                desc = await session.describe_workflow(started.workflow_id, started.run_id)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                return None  # gone past retention: nothing to say about it
            status = desc.workflow_execution_info.status
        word = FAILED_RUN.get(status)
        if word is None:
            return None
        reason = await self._failure(session, started.workflow_id, started.run_id)
        message = f"schedule {name}: last run {shown(started.workflow_id)} {word}{reason}"
        return Status.FAILED, message, f"{word}{reason}", word

    async def _failure(self, session: TemporalSession, workflow_id: str, run_id: str) -> str:
        """``: <failure message>`` of a closed run, read once per workflow id."""
        if workflow_id not in self._failures:
            text = ""
            for event in await session.last_events(workflow_id, run_id, 1):
                if event.HasField("workflow_execution_failed_event_attributes"):
                    text = event.workflow_execution_failed_event_attributes.failure.message
                elif event.HasField("workflow_execution_terminated_event_attributes"):
                    text = event.workflow_execution_terminated_event_attributes.reason
            if len(self._failures) >= MAX_REMEMBERED:
                self._failures.clear()
            self._failures[workflow_id] = f": {clip(text.strip(), 300)}" if text.strip() else ""
        return self._failures[workflow_id]
