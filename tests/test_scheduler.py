"""The scheduler with real APScheduler jobs and real threads (short intervals)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from checkers.base import CheckContext, Checker, CheckResult, Status
from server.core.clock import SystemClock
from server.core.pool import DeadlinePool
from server.recorder import Recorder
from server.runner import run_with_deadline
from server.schedule_plan import TICK, spread_offset
from server.scheduler import CheckScheduler
from server.validation import parse_config
from tests.conftest import wait_until


class ListSink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple[Any, ...]]] = []
        self.lock = threading.Lock()

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        with self.lock:
            self.rows.append((table, row))

    def statuses(self, service_id: str) -> list[tuple[int, str]]:
        with self.lock:
            return [
                (r[2], r[3]) for t, r in self.rows if t == "service_status" and r[0] == service_id
            ]


class Quick(Checker):
    def check(self, ctx: CheckContext) -> CheckResult:
        return CheckResult(Status.OK, "fine")


class Hangs(Checker):
    """Ignores its timeout, as a buggy third-party checker might."""

    release = threading.Event()

    def check(self, ctx: CheckContext) -> CheckResult:
        self.release.wait(30)
        return CheckResult(Status.OK, "late")


def services(text: str) -> list[Any]:
    return list(parse_config(text, "t.yaml", {}).services)


CONFIG = """
services:
  - {id: hung, type: host, interval: 1s, timeout: 300ms}
  - {id: fast-a, type: host, interval: 1s}
  - {id: fast-b, type: host, interval: 1s}
"""


def factory(kind: str, block: dict[str, Any]) -> Checker:
    return Quick(None)


def test_hanging_checker_is_unknown_on_time_and_others_keep_running() -> None:
    sink = ListSink()
    built = iter([Hangs(None), Quick(None), Quick(None)])
    scheduler = CheckScheduler(
        Recorder(sink), SystemClock(), max_workers=4, build=lambda k, b: next(built)
    )
    scheduler.sync(services(CONFIG))
    scheduler.start()
    try:
        assert wait_until(lambda: (5, "timed out after 0.3 s") in sink.statuses("hung"))
        assert wait_until(
            lambda: len(sink.statuses("fast-a")) >= 4 and len(sink.statuses("fast-b")) >= 4
        )
        assert scheduler.stats.timeouts >= 1
        assert scheduler.durations()["hung"] == pytest.approx(0.3, abs=0.2)
    finally:
        Hangs.release.set()
        scheduler.shutdown(wait_seconds=2)
    assert ("OK", "late") not in [(Status(c).name, m) for c, m in sink.statuses("hung")], (
        "late result dropped"
    )


def test_first_runs_are_spread_over_the_interval() -> None:
    offsets = [spread_offset(f"svc-{i}", 10.0) for i in range(1000)]
    assert 0 <= min(offsets) < 0.5 and 9.5 < max(offsets) < 10
    buckets = [sum(1 for o in offsets if b <= o < b + 1) for b in range(10)]
    assert min(buckets) > 60  # roughly uniform, no thundering herd
    assert spread_offset("api", 10) == spread_offset("api", 10)


def test_sync_adds_removes_and_reschedules() -> None:
    scheduler = CheckScheduler(Recorder(ListSink()), SystemClock(), max_workers=2, build=factory)
    first = scheduler.sync(
        services("services:\n  - {id: a, type: host}\n  - {id: b, type: host}\n")
    )
    assert first == {"added": ["a", "b"], "removed": [], "changed": []}
    scheduler.start()
    try:
        second = scheduler.sync(
            services(
                "services:\n  - {id: a, type: host, interval: 1m}\n  - {id: c, type: host}\n"
                "  - {id: d, type: host, enabled: false}\n"
            )
        )
        assert second == {"added": ["c"], "removed": ["b"], "changed": ["a"]}
        assert sorted(scheduler.entries) == ["a", "c"]
        entry = scheduler.entries["a"]
        assert entry.service.interval.total_seconds() == 60
        assert entry.armed and entry.due * TICK <= scheduler.loop.time() + 60.2
    finally:
        scheduler.shutdown(wait_seconds=1)


def test_checks_start_on_the_planned_grid() -> None:
    sink = ListSink()
    scheduler = CheckScheduler(Recorder(sink), SystemClock(), max_workers=1, build=factory)
    scheduler.sync(services("services:\n  - {id: a, type: host, interval: 1s}\n"))
    scheduler.start()
    try:
        assert wait_until(lambda: len(sink.statuses("a")) >= 3)
    finally:
        scheduler.shutdown(wait_seconds=1)
    stamps = [r[1] for t, r in sink.rows if t == "service_status"]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert all(0.9 < gap < 1.1 for gap in gaps), gaps
    assert datetime.now(UTC) > scheduler.entries["a"].first_run


def test_a_check_is_counted_only_once_its_result_is_recorded() -> None:
    # /metrics' check counts are what tests (and operators) wait on before they look at
    # the rows and alerts: a count ahead of its result's row was a race under load.
    # Each row here is written while the count still shows the results before it.
    counts_at_write: list[int] = []

    class Noting(ListSink):
        def add(self, table: str, row: tuple[Any, ...]) -> None:
            if table == "service_status":
                counts_at_write.append(scheduler.stats.checks)
            super().add(table, row)

    sink = Noting()
    scheduler = CheckScheduler(Recorder(sink), SystemClock(), max_workers=1, build=factory)
    scheduler.sync(services("services:\n  - {id: a, type: host, interval: 1s}\n"))
    scheduler.start()
    try:
        assert wait_until(lambda: scheduler.stats.checks >= 3, 30)
    finally:
        scheduler.shutdown(wait_seconds=1)
    assert len(counts_at_write) >= 3
    assert counts_at_write == list(range(len(counts_at_write)))


class Blocks(Checker):
    """A blocking checker that waits for ``gate`` (a hung /proc read, say)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(None)
        self.gate = gate

    def check(self, ctx: CheckContext) -> CheckResult:
        self.gate.wait(30)
        return CheckResult(Status.OK, "late")


def test_a_check_that_cannot_start_says_so_and_hung_threads_are_replaced() -> None:
    gate = threading.Event()
    pool = DeadlinePool(1, "t")
    now = datetime.now(UTC)

    async def scenario() -> list[CheckResult]:
        hung = asyncio.ensure_future(
            run_with_deadline(Blocks(gate), CheckContext("a", now, 1), pool)
        )
        await asyncio.sleep(0.05)  # the hung check holds the only thread
        queued = await run_with_deadline(Quick(None), CheckContext("b", now, 0.3), pool)
        first = await hung  # its deadline passes: the pool lends a thread
        after = await run_with_deadline(Quick(None), CheckContext("c", now, 0.5), pool)
        return [queued, first, after]

    try:
        queued, first, after = asyncio.run(scenario())
    finally:
        gate.set()
        pool.shutdown()
    assert (queued.status, queued.message) == (
        Status.UNKNOWN,
        "not started within its 0.3 s timeout: all 1 check threads busy (0 held by hung checks)",
    )
    assert (first.status, first.message) == (Status.UNKNOWN, "timed out after 1.0 s")
    assert (after.status, after.message) == (Status.OK, "fine")
