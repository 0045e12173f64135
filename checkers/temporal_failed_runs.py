"""Each failed run logged once, in every Temporal mode that sees runs.

``temporal_workflow`` by ``workflow_id`` logs its run's failure itself; this module
serves the modes that see many runs: ``workflow_type`` (the failure ratio's failed
runs, listed by close time) and ``temporal_schedule`` (its runs). A run is one
``service_logs`` row (ERROR, the failure's message, type and stack trace, the
workflow id and run id in its context) the first time a check sees it closed as
failed, timed out or terminated; :class:`FailedRuns` remembers the runs logged
(the newest ``REMEMBERED``). Runs that closed before the checker's first check are
not logged (a previous daemon saw them); visibility lags, so each listing reaches
``LAG`` back before the previous one and the memory drops the repeats.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

from temporalio.api.enums.v1 import WorkflowExecutionStatus as WES

from checkers.base import LogEntry
from checkers.temporal import TemporalSession, quote
from server.core.text import clip, shown

REMEMBERED = 10_000  # run ids remembered as logged
LAG = timedelta(minutes=1)  # how far a listing reaches back before the previous one
PAGE = 20  # failed runs listed per check at most (the rest are said to be more)
WORDS = {
    WES.WORKFLOW_EXECUTION_STATUS_FAILED: "failed",
    WES.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "timed out",
    WES.WORKFLOW_EXECUTION_STATUS_TERMINATED: "was terminated",
}


class FailedRuns:
    """The runs already logged, and since when this checker has been listing."""

    def __init__(self) -> None:
        self.since: datetime | None = None
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()

    def logged(self, workflow_id: str, run_id: str) -> bool:
        """Whether this run was logged already."""
        return (workflow_id, run_id) in self._logged

    async def rows(self, session: TemporalSession,
                   runs: Iterable[tuple[str, str, str]]) -> list[LogEntry]:  # fmt: skip
        """One ERROR row per run ``(workflow id, run id, word)`` not logged yet, each once
        (:func:`failure_entry`); the runs are marked logged only once every row exists,
        so a check cut before (its deadline) leaves them to the next one."""
        entries: list[LogEntry] = []
        done: dict[tuple[str, str], None] = {}
        for wid, rid, word in runs:
            if not self.logged(wid, rid) and (wid, rid) not in done:
                entries.append(await failure_entry(session, wid, rid, word))
                done[(wid, rid)] = None
        for key in done:
            self._logged[key] = None
            if len(self._logged) > REMEMBERED:
                self._logged.popitem(last=False)
        return entries

    async def of_type(self, session: TemporalSession, base: str, now: datetime) -> list[LogEntry]:
        """Entries for runs matching ``base`` (a visibility filter) that failed since the
        previous check: one visibility call (none on the first check, which only starts
        the clock)."""
        since = self.since
        if since is None:
            self.since = now
            return []
        after = (since - LAG).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            f"{base} AND ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated') "
            f"AND CloseTime > {quote(after)}"
        )
        page = await session.list_workflows(query, PAGE)
        entries = await self.rows(session, ((i.execution.workflow_id, i.execution.run_id,
                                             WORDS.get(i.status, "failed"))
                                            for i in page.executions))  # fmt: skip
        self.since = now  # the rows exist: only now is this listing done
        return entries


async def failure_entry(
    session: TemporalSession, workflow_id: str, run_id: str, word: str
) -> LogEntry:
    """One ERROR row for a closed run: its failure's message, type and stack trace."""
    message, error_type, stack = "", None, None
    for event in await session.last_events(workflow_id, run_id, 1):
        if event.HasField("workflow_execution_failed_event_attributes"):
            failure = event.workflow_execution_failed_event_attributes.failure
            cause = failure.cause if failure.HasField("cause") else None
            message = failure.message + (
                f" (caused by: {cause.message})" if cause and cause.message else ""
            )
            error_type = failure.application_failure_info.type or None
            stack = failure.stack_trace or (cause.stack_trace if cause else "") or None
        elif event.HasField("workflow_execution_terminated_event_attributes"):
            reason = event.workflow_execution_terminated_event_attributes.reason
            message = f"terminated: {reason or 'no reason given'}"
    text = f"workflow {shown(workflow_id)} {word}" + (f": {message.strip()}" if message else "")
    context = {"workflow_id": workflow_id, "run_id": run_id, "state": word}
    return LogEntry("ERROR", clip(text, 2000), "temporal", error_type, stack, context)
