"""``temporal_schedule``: did a schedule run when it should have, and did its run work?

One schedule (``schedule_id``) or every schedule whose id starts with
``schedule_prefix``. For a prefix, ListSchedules is paged to its end (the real
total is reported) and each check describes the next ``max_describe`` of the
sorted list after the last one described (a cursor going round), so every
matching schedule is described once per ``ceil(total / max_describe)`` checks.
The verdict is the worst of every schedule's last verdict (carried forward from
the check that described it); a schedule no check has described yet counts as
UNKNOWN ("N not yet checked"), never as OK. Per schedule, from DescribeSchedule:

- paused: STOPPED, with the pause note;
- actions missed because they fell outside the catch-up window, and actions
  skipped by the overlap policy, counted over the last ``window_runs`` expected
  runs (:mod:`checkers.temporal_schedule_window`), against ``thresholds`` (a
  first check only takes the baseline);
- the expected action time seen at the previous check passed, by more than
  ``late_after``, with no action for it and nothing to explain it (no missed or
  skipped count moved, nothing buffered): FAILED naming the schedule and the
  expected time, until the schedule runs again. This is the missed run that
  Temporal's namespace-wide metrics cannot trace to its schedule
  (temporalio/temporal#8087). A changed spec starts over. Lateness is judged
  by the server's clock as its stamps prove it (:mod:`checkers.temporal_clock`),
  so our clock's error never makes a run look late early.
- the last action's workflow failed, timed out or was terminated: FAILED with its
  workflow id (the schedule's own view of that status is eventually consistent,
  so a run it still calls running is described).

Counters and expected times live in the checker: a daemon restart takes a new
baseline. Listing, rotating through and summing up the schedules of a prefix
are in :mod:`checkers.temporal_schedule_prefix`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, model_validator
from temporalio.api.workflowservice.v1 import DescribeScheduleResponse
from temporalio.service import RPCError, RPCStatusCode

from checkers.base import (
    CheckContext,
    CheckResult,
    Metric,
    Settings,
    Status,
    timed_out_message,
)
from checkers.temporal import (
    TemporalChecker,
    TemporalConnection,
    TemporalSession,
    age,
    namespace_missing,
    ordered,
)
from checkers.temporal_clock import ServerClock, read_stamps
from checkers.temporal_executions import stop_describing_at
from checkers.temporal_schedule_prefix import Judged, Rotation, describe_until, matching, summary
from checkers.temporal_schedule_runs import ScheduleRuns
from checkers.temporal_schedule_window import Tally, cadence, over_window
from server.core.text import clip, shown
from server.core.units import Duration, DurationRange


class ScheduleThresholds(Settings):
    """Deltas since the previous check at which a schedule is DEGRADED or FAILED."""

    missed_catchup_window_degraded: int | None = Field(None, ge=1, le=1_000_000)
    missed_catchup_window_failed: int | None = Field(1, ge=1, le=1_000_000)
    overlap_skipped_degraded: int | None = Field(1, ge=1, le=1_000_000)
    overlap_skipped_failed: int | None = Field(None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _order(self) -> ScheduleThresholds:
        ordered(
            self,
            ("missed_catchup_window_degraded", "missed_catchup_window_failed", "below"),
            ("overlap_skipped_degraded", "overlap_skipped_failed", "below"),
        )
        return self


class ScheduleSettings(TemporalConnection):
    schedule_id: str | None = None
    schedule_prefix: str | None = None
    late_after: Annotated[Duration, DurationRange("1s", "1d")] = timedelta(minutes=1)
    thresholds: ScheduleThresholds = ScheduleThresholds()
    max_describe: int = Field(20, ge=1, le=1000)
    window_runs: int = Field(5, ge=2, le=1000)

    @model_validator(mode="after")
    def _one_target(self) -> ScheduleSettings:
        if (self.schedule_id is None) == (self.schedule_prefix is None):
            raise ValueError("set exactly one of schedule_id or schedule_prefix")
        return self


@dataclass
class Memory:
    """What the previous check saw of one schedule."""

    missed: int
    skipped: int
    spec: str
    expected: datetime | None  # the next action time then
    overdue: datetime | None = None  # an expected time that passed without a run
    stamped: datetime | None = None  # the newest server stamp read (checkers.temporal_clock)
    tallies: list[Tally] = field(default_factory=list)  # earlier checks' counters, oldest first
    every: timedelta | None = None  # the cadence last read from the next action times
    since: datetime | None = None  # when this checker first saw the schedule (runs logged after)


def _time(ts: Any) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


class TemporalScheduleChecker(TemporalChecker[ScheduleSettings]):
    Settings = ScheduleSettings

    def __init__(self, settings: ScheduleSettings) -> None:
        super().__init__(settings)
        self._memory: dict[str, Memory] = {}
        self._verdicts: dict[str, Judged] = {}  # schedule id -> its last verdict (prefix)
        self._rotation = Rotation(settings.max_describe)
        self._clock = ServerClock()  # the server's clock, from its stamps
        self._runs = ScheduleRuns()  # last runs' failures, each failed run logged once

    async def inspect(self, session: TemporalSession, ctx: CheckContext) -> CheckResult:
        s = self.settings
        if s.schedule_id is not None:
            judged = [await self._describe(session, s.schedule_id, ctx.now)]
            return self._result(session, judged, judged[0].status, judged[0].message)
        ids, cut = await matching(session, s.schedule_prefix or "")
        if not ids:
            return CheckResult(Status.UNKNOWN, f"no schedule id starts with {s.schedule_prefix!r}")
        loop = asyncio.get_running_loop()
        stop = stop_describing_at(loop.time(), session.deadline)
        judged, timed_out = await describe_until(
            self._rotation.take(ids), lambda sid: self._describe_whole(session, sid, ctx.now), stop
        )
        self._rotation.described({j.schedule_id for j in judged})
        why = f"cut: {timed_out_message(ctx.timeout)}" if timed_out else ""
        return self._prefix_result(session, ids, cut, judged, why)

    async def _describe_whole(self, session: TemporalSession, sid: str, now: datetime) -> Judged:
        """:meth:`_describe`, leaving this schedule's memory as it was if cancelled midway
        (a delta taken into memory but never reported would be lost)."""
        before = self._memory.get(sid)
        try:
            return await self._describe(session, sid, now)
        except asyncio.CancelledError:
            if before is None:
                self._memory.pop(sid, None)
            else:
                self._memory[sid] = before
            raise

    def _prefix_result(
        self,
        session: TemporalSession,
        ids: list[str],
        cut: bool,
        judged: list[Judged],
        timed_out: str = "",
    ) -> CheckResult:
        """Every matching schedule's verdict: this check's, or the last one taken of it.

        A schedule not yet described by any check counts as UNKNOWN ("N not yet
        checked"): it is never called OK unseen.
        """
        live = set(ids)
        for j in judged:
            self._verdicts[j.schedule_id] = j
        for gone in [sid for sid in self._verdicts if sid not in live]:
            del self._verdicts[gone]  # deleted schedules leave with their verdicts
            self._memory.pop(gone, None)
        known = [self._verdicts[sid] for sid in ids if sid in self._verdicts]
        status, message = summary(ids, cut, known, len(judged), timed_out)
        return self._result(session, judged, status, message, len(ids) - len(known))

    def _result(
        self,
        session: TemporalSession,
        judged: list[Judged],
        status: Status,
        message: str,
        unseen: int = 0,
    ) -> CheckResult:
        details: dict[str, Any] = {
            "namespace": self.settings.namespace,
            "schedules": [j.details for j in judged],
            "visibility_calls": session.visibility_calls,
        }
        if self.settings.schedule_prefix is not None:
            details["not_yet_checked"] = unseen
        return CheckResult(
            status,
            clip(message, 2000),
            details=details,
            metrics=[m for j in judged for m in j.metrics],
            logs=[e for j in judged for e in j.logs],
        )

    async def _describe(self, session: TemporalSession, sid: str, now: datetime) -> Judged:
        name = shown(sid)
        try:
            desc = await session.describe_schedule(sid)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or namespace_missing(exc):
                raise  # a missing namespace is a config mistake: UNKNOWN, as for every type
            # A schedule lives until someone deletes it: gone, it will not run.
            text = f"schedule {name} not found (deleted, or never created in namespace "
            text += f"{shown(self.settings.namespace)})"
            return Judged(sid, Status.FAILED, text, [], {"schedule_id": sid})
        return await self._judge(session, sid, desc, now)

    async def _judge(
        self, session: TemporalSession, sid: str, desc: DescribeScheduleResponse, now: datetime
    ) -> Judged:
        s = self.settings
        name = shown(sid)
        info, state = desc.info, desc.schedule.state
        spec = hashlib.sha256(desc.schedule.spec.SerializeToString(deterministic=True)).hexdigest()
        future = [_time(t) for t in info.future_action_times]
        recent = sorted(info.recent_actions, key=lambda a: _time(a.schedule_time))
        last = recent[-1] if recent else None
        tags = {"schedule_id": sid}
        prev = self._memory.get(sid)
        newest = prev.stamped if prev else None
        if prev is not None and prev.spec != spec:
            prev = None  # a new spec: its old expectations do not hold
        missed = max(0, info.missed_catchup_window - prev.missed) if prev else 0
        skipped = max(0, info.overlap_skipped - prev.skipped) if prev else 0
        memory = Memory(info.missed_catchup_window, info.overlap_skipped, spec, None)
        window, in_missed, in_skipped = self._windowed(prev, memory, future, now)
        details: dict[str, Any] = {
            "schedule_id": sid,
            "paused": state.paused,
            "notes": state.notes,
            "next_action_times": [t.isoformat() for t in future[:3]],
            "last_action_time": _iso(_time(last.actual_time)) if last else None,
            "last_workflow_id": last.start_workflow_result.workflow_id if last else None,
            "last_run_id": last.start_workflow_result.run_id if last else None,
            "missed_catchup_window": info.missed_catchup_window,
            "overlap_skipped": info.overlap_skipped,
            "window_seconds": window.total_seconds(),
            "missed_in_window": in_missed,
            "skipped_in_window": in_skipped,
            "running": len(info.running_workflows),
        }
        metrics = [
            Metric("missed_catchup_window", missed, "count", tags),
            Metric("overlap_skipped", skipped, "count", tags),
            Metric("running_workflows", len(info.running_workflows), "count", tags),
            Metric("action_count", info.action_count, "count", tags),
        ]
        found: list[tuple[Status, str]] = [(Status.OK, self._ok_message(sid, future, last))]
        if state.paused:
            self._memory[sid] = memory  # a pause explains any run not taken meanwhile
            note = f": {state.notes}" if state.notes else ""
            details["last_result"] = "paused"
            return Judged(sid, Status.STOPPED, f"schedule {name} paused{note}", metrics, details)
        if info.invalid_schedule_error:
            found.append((Status.FAILED, f"schedule {name} invalid: {info.invalid_schedule_error}"))
        found += self._deltas(sid, in_missed, in_skipped)
        # A run expected at the previous check that has not happened since.
        expected = (prev.overdue or prev.expected) if prev else None
        ran = last is not None and expected is not None and _time(last.schedule_time) >= expected
        explained = missed or skipped or info.buffer_size
        memory.expected = future[0] if future else None
        stamps = [_time(a.actual_time) for a in recent]
        stamps += [_time(t) for t in (info.create_time, info.update_time) if t.seconds]
        if expected is not None and future and future[0] > expected:
            stamps.append(expected)  # the server's scheduler has passed it
        memory.stamped = read_stamps(self._clock, stamps, newest, now)
        # Lateness by the server's clock (as far as its stamps prove it), not ours.
        now = self._clock.server_now(now) or now
        if expected is not None and not ran and not explained:
            memory.expected = expected  # still owed: keep watching for it
            if now - expected > s.late_after:
                memory.overdue = expected
                details["overdue"] = expected.isoformat()
                text = (
                    f"schedule {name}: the action expected at {expected:%Y-%m-%d %H:%M:%S} UTC "
                    f"did not run ({age(now - expected)} late)"
                )
                found.append((Status.FAILED, text))
        judged = await self._runs.judged(
            session, sid, recent, since=memory.since, found=found, metrics=metrics, details=details
        )
        # kept only once the verdict exists: a check cut while the runs are read (its
        # deadline) must leave the last verdict's memory, or the counts it consumed
        # (missed, skipped since then) would be lost to the next check
        self._memory[sid] = memory
        return judged

    def _windowed(
        self, prev: Memory | None, memory: Memory, future: list[datetime], now: datetime
    ) -> tuple[timedelta, int, int]:
        """(window, missed, skipped) over the last ``window_runs`` expected runs, kept in
        ``memory`` (:mod:`checkers.temporal_schedule_window`)."""
        memory.every = cadence(future) or (prev.every if prev else None)
        memory.since = prev.since if prev else now
        window = (memory.every or timedelta(0)) * self.settings.window_runs
        tally = Tally(now, memory.missed, memory.skipped)
        missed, skipped, memory.tallies = over_window(prev.tallies if prev else [], tally, window)
        return window, missed, skipped

    def _ok_message(self, sid: str, future: list[datetime], last: Any) -> str:
        name = shown(sid)
        parts = [f"schedule {name}"]
        if last is not None:
            parts.append(f"last ran {_time(last.actual_time):%Y-%m-%d %H:%M:%S} UTC")
        if future:
            parts.append(f"next {future[0]:%Y-%m-%d %H:%M:%S} UTC")
        return ", ".join(parts)

    def _deltas(self, sid: str, missed: int, skipped: int) -> list[tuple[Status, str]]:
        name = shown(sid)
        t = self.settings.thresholds
        found = []
        for count, what, degraded, failed in (
            (
                missed,
                "missed (outside the catch-up window)",
                t.missed_catchup_window_degraded,
                t.missed_catchup_window_failed,
            ),
            (
                skipped,
                "skipped by the overlap policy",
                t.overlap_skipped_degraded,
                t.overlap_skipped_failed,
            ),
        ):
            plural = "s" if count != 1 else ""
            text = (
                f"schedule {name}: {count} action{plural} {what} "
                f"in the last {self.settings.window_runs} expected runs"
            )
            if failed is not None and count >= failed:
                found.append((Status.FAILED, text))
            elif degraded is not None and count >= degraded:
                found.append((Status.DEGRADED, text))
        return found
