"""Blocking checks run and recorded in pool threads, watched by the loop (server.local_runs).

Real FIFOs and real pool threads; the watcher's sweep is driven by the test the way
the check loop drives it on each wake-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from checkers.base import CheckContext, Checker, CheckResult, Status
from server.core.pool import DeadlinePool
from server.local_runs import LocalRun, LocalRuns
from tests.conftest import wait_until
from tests.support.hostile_targets import HungFifo
from tests.test_local_checks import ReadsFile


class Quick(Checker[Any]):
    def __init__(self) -> None:
        super().__init__(None)

    def check(self, ctx: CheckContext) -> CheckResult:
        return CheckResult(Status.OK, "fine")


class Runs:
    """A LocalRuns over a real pool, its verdicts collected by owner."""

    def __init__(self, workers: int) -> None:
        self.pool = DeadlinePool(workers, "lightbulb-check")
        self.done: dict[str, list[tuple[CheckResult, float, str]]] = {}
        self.held: list[str] = []
        self.runs = LocalRuns(self.pool, self.finish, self.overrun, threading.Lock())

    def finish(self, run: LocalRun, result: CheckResult, duration: float) -> None:
        # the OS's name of the thread: what per-thread CPU in /proc is counted by
        thread = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()
        self.done.setdefault(run.owner, []).append((result, duration, thread))

    def overrun(self, run: LocalRun, _work: Any) -> None:
        self.held.append(run.owner)

    def start(self, owner: str, checker: Checker[Any], timeout: float, flush: bool = True) -> None:
        ctx = CheckContext(owner, datetime.now(UTC), timeout)
        self.runs.start(owner, checker, ctx, time.monotonic())
        if flush:
            self.runs.flush()

    def until(self, owner: str, seconds: float) -> bool:
        """Sweep as the loop would, until ``owner`` has a verdict."""

        def swept() -> bool:
            self.runs.sweep(time.monotonic())
            return owner in self.done

        return wait_until(swept, seconds)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[HungFifo]:
    hung = HungFifo(str(tmp_path / "hung.pid"))
    yield hung
    hung.close()


@pytest.mark.parametrize("hung", [2, 6])
def test_a_check_queued_behind_any_number_of_hung_reads_starts_within_a_quarter_second(
    fifo: HungFifo, hung: int
) -> None:
    # One thread; hung reads and a healthy check are due at once (as on the 0.5 s grid).
    # Taken for hung one after another (0.5 s each after it starts), six would hold the
    # healthy check past its 1 s timeout; each check still queued after QUEUED_AFTER
    # gets a thread of its own instead, so it starts at ~0.25 s.
    runs = Runs(workers=1)
    try:
        for i in range(hung):  # handed over together, as the loop does a tick's checks
            runs.start(f"hung-{i}", ReadsFile(fifo.path), 3.0, flush=False)
        runs.start("ok", Quick(), 1.0)
        assert runs.until("ok", 10)
        [(result, took, thread)] = runs.done["ok"]
        assert (result.status, result.message) == (Status.OK, "fine")
        assert took < 0.75
        assert thread == "lightbulb-check"  # recorded by the pool thread that ran it
        # every hung read holds one thread (lent once), and only one: 1 + hung at most
        assert wait_until(lambda: runs.pool.thread_count <= 1 + hung, 5)
    finally:
        runs.pool.shutdown()


def test_a_hung_check_gets_its_timeout_verdict_at_its_deadline_once(fifo: HungFifo) -> None:
    runs = Runs(workers=2)
    try:
        runs.start("hung", ReadsFile(fifo.path), 1.0)
        assert runs.until("hung", 10)
        [(result, took, thread)] = runs.done["hung"]
        assert (result.status, result.message) == (Status.UNKNOWN, "timed out after 1.0 s")
        assert 1.0 <= took < 1.5
        assert thread != "lightbulb-check"  # the watcher (the loop) recorded it
        assert runs.held == ["hung"]
        fifo.close()  # the read returns now: its late result is dropped, not recorded
        fifo.close = lambda: None  # type: ignore[method-assign]
        assert wait_until(lambda: runs.pool.overdue_count == 0, 10)
        assert len(runs.done["hung"]) == 1
    finally:
        runs.pool.shutdown()


def test_blocking_checks_start_on_a_half_second_grid_network_checks_on_the_tick() -> None:
    # Local checks due together wake the loop and the pool once for several: their
    # first runs are 0.5 s apart at least (25 ticks of 20 ms); network checks keep
    # their own spread.
    from server.core.clock import SystemClock
    from server.recorder import Recorder
    from server.schedule_plan import BLOCKING_GRID, TICK
    from server.scheduler import CheckScheduler
    from server.validation import parse_config
    from tests.test_scheduler import ListSink

    text = "services:\n" + "".join(
        f"  - {{id: p{i}, type: python_process, interval: 10s, python_process: {{pid: 1}}}}\n"
        f"  - {{id: t{i}, type: tcp, interval: 10s, tcp: {{host: 127.0.0.1, port: 9}}}}\n"
        for i in range(40)
    )
    scheduler = CheckScheduler(Recorder(ListSink()), SystemClock(), max_workers=1)
    try:
        scheduler.sync(list(parse_config(text, "t.yaml", {}).services))
        step = round(BLOCKING_GRID / TICK)
        local = {e.due % step for sid, e in scheduler.entries.items() if sid.startswith("p")}
        network = {e.due % step for sid, e in scheduler.entries.items() if sid.startswith("t")}
    finally:
        scheduler.shutdown(wait_seconds=0.1)
    assert len(local) == 1
    assert len(network) > 5


def test_checks_handed_over_together_start_one_thread_not_one_each() -> None:
    # Ten quick checks due in one tick run one after another on one thread, instead of
    # waking or starting up to max_workers threads to contend for the GIL.
    runs = Runs(workers=8)
    try:
        for i in range(10):
            runs.start(f"ok-{i}", Quick(), 1.0, flush=False)
        runs.runs.flush()
        assert wait_until(lambda: len(runs.done) == 10, 10)
        assert runs.pool.thread_count == 1
    finally:
        runs.pool.shutdown()
