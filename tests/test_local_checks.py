"""Local checks (``python_process``, ``host``) against hostile files and processes.

Real FIFOs, real files, real processes; the real scheduler loop and thread pool.
Each test asserts the verdict and that the other services stayed on time.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

import checkers
from checkers.base import CheckContext, Checker, CheckResult, Status
from checkers.python_process import FROZEN, ProcessSettings, PythonProcessChecker
from server.core.clock import SystemClock
from server.recorder import Recorder
from server.runner import run_check
from server.scheduler import CheckScheduler
from server.validation import parse_config
from tests.conftest import REPO, wait_until
from tests.support.hostile_targets import HungFifo, append_long_line, not_regular_files
from tests.test_checker_python_process import SLEEPER, Probe, marker, spawn  # noqa: F401
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


def process_check(timeout: float = 3.0, **settings: Any) -> tuple[CheckResult, float]:
    checker = PythonProcessChecker(ProcessSettings(**settings))
    started = time.monotonic()
    result = run_check(checker, CheckContext("p", datetime.now(UTC), timeout))
    return result, time.monotonic() - started


@pytest.mark.parametrize("expect", ["running", "stopped"])
def test_a_pidfile_that_is_not_a_regular_file_fails_at_once(tmp_path: Path, expect: str) -> None:
    for path, kind in not_regular_files(str(tmp_path)):
        result, took = process_check(pidfile=path, expect=expect)
        assert (result.status, result.message) == (
            Status.FAILED,
            f"pidfile {path} is not a regular file ({kind})",
        )
        assert took < 1.0  # read nothing, waited for nothing (the timeout is 3 s)


def test_an_oversized_pidfile_is_refused_after_a_few_hundred_bytes(tmp_path: Path) -> None:
    pidfile = tmp_path / "huge.pid"
    append_long_line(str(pidfile), 50 * 2**20, b"1")
    result, _took = process_check(pidfile=str(pidfile))
    assert (result.status, result.message) == (
        Status.FAILED,
        f"pidfile {pidfile} is larger than 256 bytes: not a pidfile",
    )


TAIL_SCRIPT = """
import json, os, resource, sys
from datetime import UTC, datetime
from checkers.base import CheckContext
from checkers.python_process import FROZEN, ProcessSettings, PythonProcessChecker
checker = PythonProcessChecker(ProcessSettings(pid=os.getpid(), log_file=sys.argv[1]))
ctx = CheckContext("p", datetime.now(UTC), 5)
checker.check(ctx)  # the tail starts at the end
print("ready", flush=True)
sys.stdin.readline()  # the test appends its lines
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
calls = [[(e.level, e.message) for e in checker.check(ctx).logs] for _ in range(5)]
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"calls": calls, "grown_kib": grown}), flush=True)
"""


def test_a_log_line_of_hundreds_of_megabytes_is_cut_and_never_loaded(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    proc = subprocess.Popen(
        [sys.executable, "-c", TAIL_SCRIPT, str(log)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        with log.open("ab") as handle:
            handle.write(b"ERROR before\n")
        append_long_line(str(log), 200 * 2**20, b"ERROR huge ")
        with log.open("ab") as handle:
            handle.write(b"WARN after\n")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        report = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    assert report["grown_kib"] < 32 * 1024, report["grown_kib"]  # a 200 MiB line, 32 MiB bound
    entries = [entry for call in report["calls"] for entry in call]
    assert entries[0] == ["ERROR", "ERROR before"]
    level, message = entries[1]
    assert level == "ERROR" and message.endswith(" … [line truncated at 16384 bytes]")
    assert len(message.encode()) == 16384 + len(" … [line truncated at 16384 bytes]".encode())
    # The rest of the long line is skipped (64 MiB a call), not made into entries.
    assert entries[2:] == [["WARN", "WARN after"]]


def test_a_log_file_that_is_a_fifo_or_device_is_reported_once_and_never_read(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    for path, kind in not_regular_files(str(tmp_path)):
        checker = PythonProcessChecker(ProcessSettings(pid=sleeper.pid, log_file=path))
        ctx = CheckContext("p", datetime.now(UTC), 3)
        first, second = (run_check(checker, ctx) for _ in range(2))
        assert first.status == second.status == Status.OK
        assert [(e.level, e.message) for e in first.logs] == [
            ("WARN", f"log_file {path} is not a regular file ({kind}): not read")
        ]
        assert second.logs == []


PTRACE_ATTACH, PTRACE_DETACH = 16, 17


class Frozen:
    """Freezes a real process: ``sigstop`` (state T, as `kill -STOP` or Ctrl-Z) or
    ``ptrace`` (state t, a debugger attached and holding it)."""

    def __init__(self, pid: int, how: str) -> None:
        self.pid, self.how = pid, how
        self.libc = ctypes.CDLL(None, use_errno=True)
        if how == "sigstop":
            os.kill(pid, signal.SIGSTOP)
        else:
            assert self.libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0, ctypes.get_errno()
            os.waitpid(pid, os.WUNTRACED)  # the tracee has stopped
        assert wait_until(lambda: psutil.Process(pid).status() in FROZEN)

    def thaw(self) -> None:
        if self.how == "sigstop":
            os.kill(self.pid, signal.SIGCONT)
        else:
            self.libc.ptrace(PTRACE_DETACH, self.pid, None, 0)
        assert wait_until(lambda: psutil.Process(self.pid).status() not in FROZEN)


@pytest.mark.parametrize("how", ["sigstop", "ptrace"])
@pytest.mark.parametrize("matcher", ["pid", "cmdline"])
def test_a_frozen_process_is_degraded_then_failed_and_ok_once_it_runs_again(
    spawn: Any,  # noqa: F811 - the fixture, imported
    how: str,
    matcher: str,
) -> None:
    tag = marker()
    proc = spawn(SLEEPER, tag)
    probe = Probe(**({"pid": proc.pid} if matcher == "pid" else {"cmdline": tag}))
    try:
        frozen = Frozen(proc.pid, how)
        why = FROZEN[psutil.Process(proc.pid).status()]
        first = probe.check()
        later = probe.check()
        frozen.thaw()
        thawed = probe.check()
    finally:
        probe.close()
    assert first[:2] == (Status.DEGRADED, f"pid {proc.pid} is {why}: it runs none of its code")
    assert later[0] == Status.FAILED
    assert re.fullmatch(rf"pid {proc.pid} is {re.escape(why)} for \d+ s: it runs none of its code",
                        later[1])  # fmt: skip
    assert thawed[0] == Status.OK, thawed[1]
