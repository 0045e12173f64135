"""temporal_schedule against real schedules on the session's dev server, with a real worker."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)

from checkers.base import CheckContext, Status
from checkers.temporal_schedule import ScheduleSettings, TemporalScheduleChecker
from server.runner import run_check
from tests.conftest import wait_until
from tests.support import temporal_workflows as wf
from tests.support.temporal_server import Harness, until

QUEUE = "schedules"


@pytest.fixture(scope="module")
def server(temporal_server: Harness) -> Iterator[Harness]:
    with temporal_server.worker(QUEUE, wf.WORKFLOWS, wf.ACTIVITIES):
        yield temporal_server


@contextlib.contextmanager
def schedule(
    server: Harness,
    workflow: Any,
    every: timedelta,
    *,
    schedule_id: str | None = None,
    immediately: bool = False,
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP,
    catchup_window: timedelta = timedelta(days=365),
    paused_note: str | None = None,
) -> Iterator[ScheduleHandle]:
    """A real schedule, deleted (and its running workflows terminated) afterwards."""
    sid = schedule_id or f"sch-{uuid.uuid4().hex[:8]}"
    state = ScheduleState(paused=True, note=paused_note) if paused_note else ScheduleState()
    handle: ScheduleHandle = server.run(
        server.client.create_schedule(
            sid,
            Schedule(
                action=ScheduleActionStartWorkflow(workflow, id=f"{sid}-wf", task_queue=QUEUE),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
                policy=SchedulePolicy(overlap=overlap, catchup_window=catchup_window),
                state=state,
            ),
            trigger_immediately=immediately,
        )
    )
    try:
        yield handle
    finally:
        running = server.run(handle.describe()).info.running_actions
        server.run(handle.delete())
        server.terminate(*(a.workflow_id for a in running))


def checker(server: Harness, **settings: Any) -> TemporalScheduleChecker:
    return TemporalScheduleChecker(ScheduleSettings(address=server.address, **settings))


def once(c: TemporalScheduleChecker, skew: timedelta = timedelta(0)) -> Any:
    """One check, with our clock ``skew`` off the server's (which shares this host's)."""
    return run_check(c, CheckContext("sch", datetime.now(UTC) + skew, 10))


SKEWS = [timedelta(seconds=-90), timedelta(0), timedelta(seconds=90)]


def described(result: Any) -> dict[str, Any]:
    """The first schedule a check described; empty when it described none: a check cut
    by its deadline (a new schedule's first describe took over 10 s on the dev server at
    load 10) is "not yet" to a test polling with :func:`until`, not a KeyError."""
    schedules = result.details.get("schedules") or [{}]
    return dict(schedules[0])


@contextlib.contextmanager
def skipping(
    server: Harness,
) -> Iterator[tuple[Any, TemporalScheduleChecker, int, Callable[[], int]]]:
    """A schedule every second whose run never ends, so the overlap policy skips the
    next ones: its handle, its checker, the skips the first check saw (once a run is going), and a
    count of skips read from the server; yielded once two more were skipped."""
    with schedule(
        server, wf.WaitForever.run, timedelta(seconds=1), overlap=ScheduleOverlapPolicy.SKIP
    ) as handle:
        c = checker(server, schedule_id=handle.id)
        first = until(lambda: once(c), lambda r: described(r).get("running") == 1)
        before = first.details["schedules"][0]["overlap_skipped"]

        def skipped() -> int:
            return int(server.run(handle.describe()).info.num_actions_skipped_overlap)

        assert wait_until(lambda: skipped() >= before + 2, 30)
        yield handle, c, before, skipped


def test_a_schedule_whose_workflow_fails_is_failed_naming_it(server: Harness) -> None:
    with schedule(server, wf.FailsAtOnce.run, timedelta(hours=1), immediately=True) as handle:
        c = checker(server, schedule_id=handle.id)
        result = until(lambda: once(c), lambda r: r.status == Status.FAILED)
    wid = result.details["schedules"][0]["last_workflow_id"]
    assert wid.startswith(f"{handle.id}-wf")
    assert result.status == Status.FAILED
    assert result.message == (
        f"schedule {handle.id}: last run {wid} failed: payment ledger out of balance"
    )


def test_a_paused_schedule_is_stopped_with_its_note(server: Harness) -> None:
    with schedule(
        server, wf.CompletesAtOnce.run, timedelta(hours=1), paused_note="db migration"
    ) as handle:
        result = once(checker(server, schedule_id=handle.id))
    assert result.status == Status.STOPPED
    assert result.message == f"schedule {handle.id} paused: db migration"


def test_runs_skipped_by_the_overlap_policy_are_counted_since_the_last_check(
    server: Harness,
) -> None:
    with skipping(server) as (handle, c, before, _):
        second = once(c)
    total = second.details["schedules"][0]["overlap_skipped"]
    delta = {m.name: m.value for m in second.metrics}["overlap_skipped"]
    assert delta == total - before and delta >= 2
    assert second.status == Status.DEGRADED
    in_window = second.details["schedules"][0]["skipped_in_window"]
    assert in_window >= delta
    assert (
        f"schedule {handle.id}: {in_window} actions skipped by the overlap policy "
        "in the last 5 expected runs"
    ) in second.message


def test_a_schedule_skipping_in_a_pattern_stays_degraded_whatever_the_checks_phase(
    server: Harness,
) -> None:
    # The attack: a 25 s run every 10 s (run, skip, skip, run ...) checked every 5 s
    # flipped OK <-> DEGRADED. Here a 5 s run every 2 s; a check right after each
    # change of the server's counters catches both phases (just after a skip, just
    # after a run): judged over the last 5 expected runs every one is DEGRADED.
    with schedule(
        server, wf.RunsFiveSeconds.run, timedelta(seconds=2), overlap=ScheduleOverlapPolicy.SKIP
    ) as handle:
        c = checker(server, schedule_id=handle.id)

        def counters() -> tuple[int, int]:
            info = server.run(handle.describe()).info
            return int(info.num_actions), int(info.num_actions_skipped_overlap)

        once(c)  # the baseline
        assert wait_until(lambda: counters()[1] >= 2, 30)
        results: list[tuple[tuple[int, int], Any]] = []
        seen = [counters()]
        while len(results) < 8:
            assert wait_until(lambda: counters() != seen[-1], 30)
            seen.append(counters())
            results.append((seen[-1], once(c)))
    runs = {n for (n, _), _ in results}
    assert len(runs) >= 2, "no run started while checking: the phases were not both seen"
    assert [r.status for _, r in results] == [Status.DEGRADED] * 8, [
        (counts, r.message) for counts, r in results
    ]


@pytest.mark.parametrize("skew", SKEWS, ids=["ours-behind", "same", "ours-ahead"])
def test_an_expected_run_that_never_came_is_failed_until_the_schedule_runs_again(
    server: Harness, skew: timedelta
) -> None:
    # Whichever way our clock is off, the miss is judged by the server's clock.
    with schedule(server, wf.CompletesAtOnce.run, timedelta(seconds=6)) as handle:
        c = checker(server, schedule_id=handle.id, late_after="1s")
        for _attempt in range(3):
            first = once(c, skew)
            expected = datetime.fromisoformat(first.details["schedules"][0]["next_action_times"][0])
            # Paused over its next action time, the schedule takes no action for it and
            # counts nothing: only the expected time seen by the check tells.
            server.run(handle.pause(note="lost a run"))
            last = server.run(handle.describe()).info.recent_actions
            if last and last[-1].scheduled_at >= expected:
                server.run(handle.unpause())
                continue  # the run came before the pause: try the next one
            late = expected + timedelta(seconds=3)
            assert wait_until(lambda: datetime.now(UTC) > late, 30)  # noqa: B023
            server.run(handle.unpause())
            missed = once(c, skew)
            ran = missed.details["schedules"][0]["last_action_time"]
            if ran and datetime.fromisoformat(ran) > expected:
                continue  # the next tick came between the unpause and the check
            break
        else:
            pytest.fail("could not pause the schedule over one of its action times")
        recovered = until(lambda: once(c, skew), lambda r: r.status == Status.OK, seconds=30)
    assert missed.status == Status.FAILED
    when = f"{expected:%Y-%m-%d %H:%M:%S} UTC"
    assert missed.message.startswith(
        f"schedule {handle.id}: the action expected at {when} did not run ("
    )
    assert missed.details["schedules"][0]["overdue"] == expected.isoformat()
    assert recovered.status == Status.OK  # it ran again: the miss is behind us


def test_runs_missed_while_the_server_was_frozen_past_the_catchup_window_fail(
    server: Harness,
) -> None:
    assert server.proc is not None
    # ALLOW_ALL: on a loaded machine a run can outlast the 1 s interval, and under SKIP
    # the server then (truly) skips the next action, DEGRADED before the freeze.
    with schedule(
        server,
        wf.CompletesAtOnce.run,
        timedelta(seconds=1),
        catchup_window=timedelta(seconds=10),
        overlap=ScheduleOverlapPolicy.ALLOW_ALL,
    ) as handle:
        c = checker(server, schedule_id=handle.id)
        first = until(lambda: once(c), lambda r: described(r).get("last_action_time"))
        assert first.status == Status.OK
        # Frozen longer than the catch-up window, the server cannot start the runs of
        # that time when it wakes: it counts them as missed.
        server.freeze()
        frozen_at = time.monotonic()
        try:
            assert wait_until(lambda: time.monotonic() - frozen_at > 12, 20)
        finally:
            server.thaw()

        def missed() -> int:
            return int(server.run(handle.describe()).info.num_actions_missed_catchup_window)

        assert wait_until(lambda: missed() >= 1, 30)
        result = once(c)
    delta = {m.name: m.value for m in result.metrics}["missed_catchup_window"]
    assert delta >= 1
    assert result.status == Status.FAILED
    in_window = result.details["schedules"][0]["missed_in_window"]
    assert in_window >= delta
    assert f"schedule {handle.id}: {in_window} action" in result.message
    assert "missed (outside the catch-up window) in the last 5 expected runs" in result.message


def test_a_prefix_covers_every_matching_schedule_and_names_the_broken_one(
    server: Harness,
) -> None:
    prefix = f"nightly-{uuid.uuid4().hex[:6]}-"
    with (
        schedule(
            server,
            wf.CompletesAtOnce.run,
            timedelta(hours=1),
            schedule_id=f"{prefix}report",
            immediately=True,
        ),
        schedule(
            server,
            wf.FailsAtOnce.run,
            timedelta(hours=1),
            schedule_id=f"{prefix}ledger",
            immediately=True,
        ),
    ):
        c = checker(server, schedule_prefix=prefix)
        result = until(
            lambda: once(c),
            lambda r: r.status == Status.FAILED and len(r.details.get("schedules", [])) == 2,
        )
    assert result.status == Status.FAILED
    assert result.message.startswith(f"schedule {prefix}ledger: last run {prefix}ledger-wf")
    assert sorted(s["schedule_id"] for s in result.details["schedules"]) == [
        f"{prefix}ledger",
        f"{prefix}report",
    ]


def test_a_schedule_that_does_not_exist_is_failed(server: Harness) -> None:
    result = once(checker(server, schedule_id="no-such-schedule"))
    assert result.status == Status.FAILED
    assert result.message == (
        "schedule no-such-schedule not found (deleted, or never created in namespace default)"
    )


def test_schedule_settings_take_one_target_and_a_sane_lateness() -> None:
    with pytest.raises(ValueError, match="exactly one of schedule_id or schedule_prefix"):
        ScheduleSettings()
    with pytest.raises(ValueError, match="exactly one"):
        ScheduleSettings(schedule_id="a", schedule_prefix="b")
    with pytest.raises(ValueError, match="expected a duration from 1s to 1d"):
        ScheduleSettings(schedule_id="a", late_after="500ms")


def test_a_prefix_rotates_through_every_schedule_and_never_calls_unseen_ones_ok(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import checkers.temporal_schedule_prefix as module

    monkeypatch.setattr(module, "LIST_PAGE", 4)  # several ListSchedules pages for 11 schedules
    prefix = f"many-{uuid.uuid4().hex[:6]}-"
    with contextlib.ExitStack() as stack:
        for n in range(10):
            stack.enter_context(
                schedule(
                    server,
                    wf.CompletesAtOnce.run,
                    timedelta(hours=1),
                    schedule_id=f"{prefix}{n:02d}",
                )
            )
        stack.enter_context(
            schedule(
                server,
                wf.FailsAtOnce.run,
                timedelta(hours=1),
                schedule_id=f"{prefix}zz-ledger",
                immediately=True,
            )
        )
        lister = checker(server, schedule_prefix=prefix, max_describe=4)
        until(lambda: once(lister), lambda r: "of 11 " in r.message)  # visibility caught up
        wait_until(
            lambda: (
                server.run(
                    server.client.get_schedule_handle(f"{prefix}zz-ledger").describe()
                ).info.recent_actions
            ),
            30,
        )
        c = checker(server, schedule_prefix=prefix, max_describe=4)
        checks = [once(c) for _ in range(4)]
        c2 = checker(server, schedule_prefix=prefix, max_describe=4)
        described = [
            s["schedule_id"] for r in [once(c2) for _ in range(3)] for s in r.details["schedules"]
        ]
    first, second, third, fourth = checks
    # Never OK while some schedules were never looked at.
    assert first.status == Status.UNKNOWN
    assert first.message == (
        "7 of 11 schedules not yet checked; described 4 of 11 this check (max_describe), "
        "7 not yet checked"
    )
    assert first.details["not_yet_checked"] == 7
    assert second.status == Status.UNKNOWN and second.details["not_yet_checked"] == 3
    # The third check reaches the last schedule, the failing one.
    assert third.status == Status.FAILED
    assert third.message.startswith(f"schedule {prefix}zz-ledger: last run {prefix}zz-ledger-wf")
    assert third.message.endswith(
        "described 4 of 11 this check (max_describe), the rest as last checked"
    )
    # The third wrapped round to the start; the fourth goes on from there, and the
    # failed schedule's verdict is carried forward.
    assert [s["schedule_id"] for s in third.details["schedules"]][-1] == f"{prefix}00"
    assert [s["schedule_id"] for s in fourth.details["schedules"]] == [
        f"{prefix}{n:02d}" for n in range(1, 5)
    ]
    assert fourth.status == Status.FAILED and f"{prefix}zz-ledger" in fourth.message
    # Every matching schedule described exactly once over a round.
    assert sorted(described[:11]) == sorted(
        [f"{prefix}{n:02d}" for n in range(10)] + [f"{prefix}zz-ledger"]
    )


def test_our_clock_ahead_of_the_servers_never_calls_a_run_late_before_it_is_due(
    server: Harness,
) -> None:
    ahead = timedelta(seconds=90)
    with schedule(server, wf.CompletesAtOnce.run, timedelta(seconds=4)) as handle:
        c = checker(server, schedule_id=handle.id, late_after="1s")
        first = once(c, ahead)

        def actions() -> int:
            return len(server.run(handle.describe()).info.recent_actions)

        results = [first]
        # Checked again and again while the schedule takes two actions on time.
        while actions() < 2 and len(results) < 400:
            results.append(once(c, ahead))
        results.append(once(c, ahead))
    assert [r.message for r in results if r.status != Status.OK] == []
    assert results[-1].details["schedules"][0]["last_action_time"] is not None


def test_a_prefix_check_cut_by_its_deadline_keeps_what_it_described_and_goes_on_from_there(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack: 1,105 schedules with max_describe 1000 timed out every check, so
    # nothing was ever kept. Here the server stops answering after four describes.
    import checkers.temporal_schedule_prefix as module
    from checkers.temporal import TemporalSession

    assert server.proc is not None
    prefix = f"cut-{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{n:02d}" for n in range(12)]
    frozen: list[bool] = []
    with contextlib.ExitStack() as stack:
        for sid in ids:
            stack.enter_context(
                schedule(server, wf.CompletesAtOnce.run, timedelta(hours=1), schedule_id=sid)
            )
        lister = checker(server, schedule_prefix=prefix, max_describe=1)
        until(lambda: once(lister), lambda r: "of 12 " in r.message)  # visibility caught up
        c = checker(server, schedule_prefix=prefix, max_describe=12)
        monkeypatch.setattr(module, "DESCRIBE_CONCURRENCY", 1)
        real = TemporalSession.describe_schedule
        asked: list[str] = []

        async def describe(self: TemporalSession, sid: str) -> Any:
            if len(asked) == 4 and not frozen:
                server.freeze()
                frozen.append(True)
            asked.append(sid)
            return await real(self, sid)

        monkeypatch.setattr(TemporalSession, "describe_schedule", describe)
        try:
            cut = run_check(c, CheckContext("sch", datetime.now(UTC), 4))
        finally:
            server.thaw()
        monkeypatch.undo()
        after = once(c)
    assert cut.status == Status.UNKNOWN, cut.message
    assert cut.message == (
        "8 of 12 schedules not yet checked; described 4 of 12 this check "
        "(cut: timed out after 4.0 s), 8 not yet checked"
    )
    assert [s["schedule_id"] for s in cut.details["schedules"]] == ids[:4]
    # The next check starts after the last one described and the round completes.
    assert [s["schedule_id"] for s in after.details["schedules"]] == ids[4:] + ids[:4]
    assert after.status == Status.OK, after.message
    assert after.details["not_yet_checked"] == 0


def test_a_check_cut_while_reading_the_last_run_leaves_its_counts_to_the_next_check(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is cut by its deadline (the server frozen) after the schedule was
    described, while its last run is read: nothing was said, so the skips it saw are
    the next check's to count, every one, from the last check that said something."""
    from checkers.temporal_schedule_runs import ScheduleRuns

    assert server.proc is not None
    with skipping(server) as (_, c, before, skipped):
        real = ScheduleRuns.last_run
        reached: list[bool] = []

        async def last_run(self: ScheduleRuns, *args: Any) -> Any:
            reached.append(True)
            server.freeze()  # the server stops answering here: the deadline cuts the check
            return await real(self, *args)

        at_cut = skipped()  # the cut check reads at least these
        monkeypatch.setattr(ScheduleRuns, "last_run", last_run)
        try:
            cut = run_check(c, CheckContext("sch", datetime.now(UTC), 3))
        finally:
            server.thaw()
        monkeypatch.undo()
        after = once(c)
    assert reached and cut.status == Status.UNKNOWN, cut.message
    total = after.details["schedules"][0]["overlap_skipped"]
    delta = {m.name: m.value for m in after.metrics}["overlap_skipped"]
    assert total >= at_cut >= before + 2
    assert delta == total - before  # not total minus what the cut check had read
    assert after.status == Status.DEGRADED, after.message
