"""Local checks (``python_process``, ``host``) against hostile files and processes.

Real FIFOs, real files, real processes; the real scheduler loop and thread pool.
Each test asserts the verdict and that the other services stayed on time.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import checkers
from checkers.base import CheckContext, Checker, CheckResult, Status
from server.core.clock import SystemClock
from server.recorder import Recorder
from server.scheduler import CheckScheduler
from server.validation import parse_config
from tests.conftest import wait_until
from tests.support.hostile_targets import HungFifo
from tests.test_scheduler import ListSink


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)  # fmt: skip
    yield proc
    proc.kill()
    proc.wait()


class ReadsFile(Checker[Any]):
    """A local checker that reads a file the plain way: on a FIFO with no writer (or a
    hung NFS mount) the read never returns."""

    entered = 0
    lock = threading.Lock()

    def __init__(self, path: str) -> None:
        super().__init__(None)
        self.path = path

    def check(self, ctx: CheckContext) -> CheckResult:
        with ReadsFile.lock:
            ReadsFile.entered += 1
        with open(self.path) as handle:  # the blocking open is the point
            return CheckResult(Status.OK, handle.read())


@pytest.mark.parametrize("workers", [1, 4])
def test_hung_local_reads_hold_one_thread_each_and_never_delay_other_local_checks(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], workers: int
) -> None:
    fifo = HungFifo(str(tmp_path / "hung.pid"))
    hung = workers + 2  # more hung services than threads in the pool
    text = "services:\n" + "".join(
        f"  - {{id: hung-{i}, type: python_process, interval: 2s, timeout: 1500ms,"
        f" python_process: {{pidfile: {fifo.path}}}}}\n"
        for i in range(hung)
    )
    # Each healthy check must start and end within 1 s of its planned time, or it is
    # UNKNOWN "not started within its 1.0 s timeout" (a hung one lasts 1.5 s).
    text += "".join(
        f"  - {{id: proc-{x}, type: python_process, interval: 1s, timeout: 1s,"
        f" python_process: {{pid: {sleeper.pid}}}}}\n"
        for x in "ab"
    )
    text += "  - {id: host, type: host, interval: 1s, timeout: 1s}\n"

    def build(kind: str, block: dict[str, Any]) -> Checker[Any]:
        if block.get("pidfile") == fifo.path:
            return ReadsFile(fifo.path)
        return checkers.build_checker(kind, block)  # type: ignore[no-any-return]

    ReadsFile.entered = 0
    sink = ListSink()
    scheduler = CheckScheduler(Recorder(sink), SystemClock(), max_workers=workers, build=build)
    scheduler.sync(list(parse_config(text, "t.yaml", {}).services))
    scheduler.start()
    try:
        # Four intervals of every hung service: each would have taken another thread.
        assert wait_until(
            lambda: all(len(sink.statuses(f"hung-{i}")) >= 4 for i in range(hung)), 30
        )
        held_threads = scheduler.pool.thread_count
        entered = ReadsFile.entered
    finally:
        scheduler.shutdown(wait_seconds=0.5)
        fifo.close()
    assert entered == hung  # one run per hung service, never a second thread
    assert held_threads <= workers + hung
    for sid in ("proc-a", "proc-b", "host"):
        stored = [(r[1], r[2], r[3]) for t, r in sink.rows if t == "service_status" and r[0] == sid]
        assert stored and {code for _, code, _ in stored} == {0}, stored[:3]
        stamps = [at for at, _, _ in stored]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert all(gap < 2.0 for gap in gaps), gaps  # interval + at most 1 s of lag
        assert len(stored) >= 6
    for i in range(hung):
        first, *later = sink.statuses(f"hung-{i}")
        assert first == (Status.UNKNOWN, "timed out after 1.5 s")
        for code, message in later:
            assert code == Status.UNKNOWN
            assert message.startswith("previous check still running for "), message
            assert "(hung in " in message and "test_local_checks.py" in message, message
    assert max(scheduler.stats.lags_ms) < 1000
