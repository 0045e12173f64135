"""The python_process checker on real child processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from checkers.base import CheckContext, Status
from checkers.python_process import ProcessSettings, PythonProcessChecker
from server.runner import run_check
from tests.conftest import REPO, wait_until

SLEEPER = "import sys, time\nwhile True: time.sleep(0.05)\n"


@pytest.fixture
def spawn() -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(code: str = SLEEPER, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", code, *args])
        procs.append(proc)
        # Until the child has exec'd, /proc shows the parent's command line.
        wait_until(lambda: psutil.Process(proc.pid).cmdline()[1:3] == ["-c", code])
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def check(checker: PythonProcessChecker) -> Any:
    return run_check(checker, CheckContext("p", datetime.now(UTC), 5))


def marker() -> str:
    return f"lbmark-{uuid.uuid4().hex[:8]}"


# Checks in a sibling process: a process check never matches its own process, its
# ancestors or its descendants, so targets spawned by this test process are found
# only from a process that is none of those, as the daemon is for a real worker.
PROBE = """
import json, sys
from datetime import UTC, datetime
from checkers.base import CheckContext
from checkers.python_process import ProcessSettings, PythonProcessChecker
from server.runner import run_check
checker = PythonProcessChecker(ProcessSettings(**json.loads(sys.argv[1])))
for _line in sys.stdin:
    r = run_check(checker, CheckContext("p", datetime.now(UTC), 5))
    metrics = {m.name: m.value for m in r.metrics}
    print(json.dumps([int(r.status), r.message, r.details, metrics]), flush=True)
"""


class Probe:
    def __init__(self, **settings: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, json.dumps(settings)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def check(self) -> tuple[Status, str, dict[str, Any], dict[str, float]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        code, message, details, metrics = json.loads(self.proc.stdout.readline())
        return Status(code), message, details, metrics

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_running_by_cmdline_marker_is_ok_with_metrics(spawn: Any) -> None:
    tag = marker()
    proc = spawn(SLEEPER, tag)
    probe = Probe(cmdline=tag)
    try:
        status, _message, details, metrics = probe.check()
    finally:
        probe.close()
    assert status == Status.OK and details["pid"] == proc.pid
    assert set(metrics) >= {
        "cpu_percent",
        "memory_percent",
        "rss_bytes",
        "num_threads",
        "num_fds",
        "uptime_seconds",
        "restarts",
    }


def test_killed_process_goes_failed(spawn: Any) -> None:
    tag = marker()
    proc = spawn(SLEEPER, tag)
    probe = Probe(cmdline=tag)
    try:
        assert probe.check()[0] == Status.OK
        proc.kill()
        proc.wait()
        status, message, _details, _metrics = probe.check()
    finally:
        probe.close()
    assert status == Status.FAILED
    assert message == f"not running: no process matches cmdline /{tag}/"


def test_a_check_never_matches_its_own_process_or_its_children(spawn: Any) -> None:
    tag = marker()
    spawn(SLEEPER, tag)  # our child: a descendant of the process checking
    result = check(PythonProcessChecker(ProcessSettings(cmdline=tag)))
    assert result.status == Status.FAILED
    own = re.escape(" ".join(psutil.Process().cmdline()))
    family = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    result = check(PythonProcessChecker(ProcessSettings(cmdline=f"^{own}$")))
    assert result.details.get("pid") not in family  # another engineer's identical run may match


@pytest.mark.parametrize("wrapper", [[], ["timeout", "60"]])
def test_lightbulb_check_does_not_find_itself_or_its_wrapper(
    tmp_path: Path, wrapper: list[str]
) -> None:
    config = tmp_path / "billing-worker.yaml"
    config.write_text(
        "services:\n  - {id: billing, type: python_process,"
        " python_process: {cmdline: billing-worker}}\n"
    )
    done = subprocess.run(
        [*wrapper, sys.executable, "-m", "server.cli", "check", "billing", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.startswith(
        "billing: FAILED (2) not running: no process matches cmdline /billing-worker/"
    ), done.stdout + done.stderr


REUSE = """
import os, subprocess, sys, time
from datetime import UTC, datetime
from checkers.base import CheckContext
from checkers.python_process import ProcessSettings, PythonProcessChecker
from server.runner import run_check

def sleeper():
    return subprocess.Popen(["sleep", "600"])

def ask(checker):
    r = run_check(checker, CheckContext("p", datetime.now(UTC), 5))
    return r.details.get("pid"), {m.name: m.value for m in r.metrics}.get("restarts")

first = sleeper()
open("w.pid", "w").write(str(first.pid))
checker = PythonProcessChecker(ProcessSettings(pidfile="w.pid"))
print(ask(checker))
first.kill(); first.wait()
time.sleep(0.05)  # create times tick in 10 ms (USER_HZ): a reuse within one tick is invisible
with open("/proc/sys/kernel/ns_last_pid", "w") as f:  # the next process gets the same pid
    f.write(str(first.pid - 1))
second = sleeper()
print(second.pid == first.pid, ask(checker))
second.kill(); second.wait()
"""


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root")
def test_a_reused_pid_is_a_new_process(tmp_path: Path) -> None:
    """In a pid namespace of its own, the kernel is told to hand the old pid out again."""
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", REUSE],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stderr
    pid = lines[0].split(",")[0].strip("(")
    assert lines[0] == f"({pid}, 0)"
    assert lines[1] == f"True ({pid}, 1)", "same pid, new process: a restart"


def test_not_running_with_expect_stopped_is_stopped() -> None:
    checker = PythonProcessChecker(ProcessSettings(cmdline=marker(), expect="stopped"))
    assert check(checker).status == Status.STOPPED


def test_pidfile_and_restart_counts(spawn: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "worker.pid"
    first = spawn()
    pidfile.write_text(f"{first.pid}\n")
    checker = PythonProcessChecker(ProcessSettings(pidfile=str(pidfile)))
    assert check(checker).status == Status.OK
    first.kill()
    first.wait()
    second = spawn()
    pidfile.write_text(str(second.pid))
    result = check(checker)
    assert result.status == Status.OK and result.details["pid"] == second.pid
    assert {m.name: m.value for m in result.metrics}["restarts"] == 1


def test_stale_pidfile_is_failed(tmp_path: Path) -> None:
    pidfile = tmp_path / "gone.pid"
    pidfile.write_text("999999999")
    result = check(PythonProcessChecker(ProcessSettings(pidfile=str(pidfile))))
    assert result.status == Status.FAILED


def test_zombie_is_failed(spawn: Any) -> None:
    # The parent forks a child that exits at once and is never reaped.
    code = (
        "import os, time\npid = os.fork()\nif pid == 0: os._exit(0)\n"
        "print(pid, flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        child = int(proc.stdout.readline())  # type: ignore[union-attr]
        checker = PythonProcessChecker(ProcessSettings(pid=child))
        wait_until(lambda: check(checker).status == Status.FAILED)
        result = check(checker)
        assert result.status == Status.FAILED and "zombie" in result.message
    finally:
        proc.kill()
        proc.wait()


def test_young_process_is_starting(spawn: Any) -> None:
    proc = spawn()
    result = check(PythonProcessChecker(ProcessSettings(pid=proc.pid, startup_grace="1h")))
    assert result.status == Status.STARTING


def test_memory_threshold_degrades(spawn: Any) -> None:
    code = (
        "import time\nblob = bytearray(200 * 1024 * 1024)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()  # type: ignore[union-attr]
        limit = 150 * 1024 * 1024 / os.sysconf("SC_PHYS_PAGES") / os.sysconf("SC_PAGE_SIZE") * 100
        result = check(
            PythonProcessChecker(
                ProcessSettings(pid=proc.pid, thresholds={"memory_percent": limit})
            )
        )
        assert result.status == Status.DEGRADED and "memory_percent" in result.message
    finally:
        proc.kill()
        proc.wait()


def test_thread_threshold_degrades(spawn: Any) -> None:
    proc = spawn()
    result = check(
        PythonProcessChecker(ProcessSettings(pid=proc.pid, thresholds={"num_threads": 0}))
    )
    assert result.status == Status.DEGRADED and "num_threads 1 > 0" in result.message


def test_log_file_lines_since_last_check_with_levels(spawn: Any, tmp_path: Path) -> None:
    proc = spawn()
    log = tmp_path / "app.log"
    log.write_text("old line that is history\n")
    checker = PythonProcessChecker(ProcessSettings(pid=proc.pid, log_file=str(log)))
    assert check(checker).logs == []
    with log.open("a") as handle:
        handle.write("2026-11-22 10:00:00 ERROR db connection lost\n")
        handle.write('{"level": "warning", "msg": "slow query"}\n')
        handle.write("plain line\n")
        handle.write("partial without newline")
    entries = check(checker).logs
    assert [(e.level, e.message) for e in entries] == [
        ("ERROR", "2026-11-22 10:00:00 ERROR db connection lost"),
        ("WARN", "slow query"),
        ("INFO", "plain line"),
    ]
    assert check(checker).logs == []


def test_exactly_one_matcher_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one of pidfile, pid, name or cmdline"):
        ProcessSettings(pid=1, name="x")


def test_stopped_process_is_still_found_and_not_ok(spawn: Any) -> None:
    proc = spawn()
    os.kill(proc.pid, signal.SIGSTOP)
    wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED)
    try:
        result = check(PythonProcessChecker(ProcessSettings(pid=proc.pid)))
        assert result.status == Status.DEGRADED and result.details["process_status"] == "stopped"
    finally:
        os.kill(proc.pid, signal.SIGCONT)


# Run as `nobody` (65534), as the shipped unit runs the daemon as an unprivileged user
# without CAP_SYS_PTRACE: another user's /proc/PID/fd (num_fds) is closed to it.
AS_NOBODY = """
import json, os, sys
from datetime import UTC, datetime
from checkers.base import CheckContext
from checkers.python_process import ProcessSettings, PythonProcessChecker
from server.runner import run_check
os.setgid(65534); os.setuid(65534)  # after imports: the interpreter lives under /root
for settings in json.loads(sys.argv[1]):
    checker = PythonProcessChecker(ProcessSettings.model_validate(settings))
    r = run_check(checker, CheckContext("p", datetime.now(UTC), 5))
    print(json.dumps([int(r.status), r.message, r.details, sorted(m.name for m in r.metrics)]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_another_users_process_is_judged_on_what_can_be_read(spawn: Any) -> None:
    """Checked as `nobody`, a root-owned process: its fds cannot be read, so num_fds is
    left out (and said so in details); existence, state, cpu, memory and threads still
    give the verdict, OK or DEGRADED, never UNKNOWN."""
    mark = marker()
    target = spawn(SLEEPER, mark)
    fds_only = {"num_fds": 1}  # would be breached, if it could be read
    runs = [
        {"pid": target.pid, "thresholds": {**fds_only, "memory_percent": 100}},
        {"pid": target.pid, "thresholds": {**fds_only, "num_threads": 0}},
        {"cmdline": mark, "thresholds": fds_only},
        {"pid": 4_194_000},  # no such process
    ]
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", AS_NOBODY, json.dumps(runs)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert done.returncode == 0, done.stderr
    ok, degraded, by_cmdline, missing = (json.loads(line) for line in done.stdout.splitlines())
    readable = ["cpu_percent", "memory_percent", "num_threads", "restarts", "rss_bytes",
                "uptime_seconds"]  # fmt: skip
    assert ok[0] == 0 and ok[1].startswith(f"pid {target.pid} running for "), ok
    assert ok[3] == readable  # num_fds absent, not 0
    assert ok[2]["not_readable"] == "num_fds (access denied)"
    assert degraded[0] == 1 and degraded[1] == f"pid {target.pid}: num_threads 1 > 0"
    assert by_cmdline[0] == 0 and by_cmdline[2]["pid"] == target.pid
    assert missing[0] == 2 and missing[1].startswith("not running")


def test_json_log_records_give_their_message_level_code_and_stack(
    spawn: Any, tmp_path: Path
) -> None:
    proc = spawn()
    log = tmp_path / "app.jsonl"
    log.write_text("")
    checker = PythonProcessChecker(ProcessSettings(pid=proc.pid, log_file=str(log)))
    assert check(checker).logs == []
    records = [
        # python-json-logger
        {"asctime": "2026-11-22", "levelname": "ERROR", "message": "db down", "exc_info":
         "Traceback (most recent call last):\n  boom", "request_id": "r-1"},
        # structlog
        {"event": "cache miss", "level": "warning", "key": "user:7", "timestamp": "x"},
        # Bunyan / pino (numeric levels, err object)
        {"level": 50, "msg": "payment failed", "err": {"type": "CardDeclined", "stack": "at x"},
         "hostname": "h", "time": 1},
        # Elastic Common Schema
        {"@timestamp": "x", "log": {"level": "error"}, "message": "disk full",
         "error": {"code": "ENOSPC", "stack_trace": "trace"}},
        # no message key at all
        {"level": "info", "count": 3},
    ]  # fmt: skip
    with log.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    entries = check(checker).logs
    assert [(e.level, e.message, e.error_code) for e in entries] == [
        ("ERROR", "db down", None),
        ("WARN", "cache miss", None),
        ("ERROR", "payment failed", "CardDeclined"),
        ("ERROR", "disk full", "ENOSPC"),
        ("INFO", '{"level": "info", "count": 3}', None),
    ]
    assert entries[0].stack_trace == "Traceback (most recent call last):\n  boom"
    assert entries[0].context == {"request_id": "r-1"}
    assert entries[1].context == {"key": "user:7"}
    assert entries[2].stack_trace == "at x" and entries[2].context["hostname"] == "h"
    assert entries[3].stack_trace == "trace"
    assert entries[4].context == {"count": "3"}


def test_figures_read_from_proc_equal_psutils(spawn: Any) -> None:
    """One /proc/<pid>/stat read gives what psutil's Process gives: same names and units."""
    busy = spawn("import os\nwhile True: os.getpid()\n")
    checker = PythonProcessChecker(ProcessSettings(pid=busy.pid))
    check(checker)  # primes the CPU counter, as psutil's cpu_percent(None) does
    # a spinning process shows CPU use once some of its time has passed between checks
    assert wait_until(lambda: {m.name: m.value for m in check(checker).metrics}["cpu_percent"] > 0)
    result = check(checker)
    figures = {m.name: m.value for m in result.metrics}
    process = psutil.Process(busy.pid)
    assert result.details["process_status"] == process.status() == psutil.STATUS_RUNNING
    assert figures["num_threads"] == process.num_threads()

    def same_fds() -> bool:  # a starting interpreter may still open files between reads
        return {m.name: m.value for m in check(checker).metrics}["num_fds"] == process.num_fds()

    assert wait_until(same_fds)
    assert abs(figures["rss_bytes"] - process.memory_info().rss) < 1024 * 1024
    assert abs(figures["uptime_seconds"] - (time.time() - process.create_time())) < 1.0
    assert figures["restarts"] == 0


def test_a_cmdline_check_confirms_last_times_process_without_scanning_the_table(
    spawn: Any,
) -> None:
    # Same pid, same start time, still matching: the same process, and still the oldest
    # match, found with two reads of its own /proc entry instead of a scan of every
    # process's command line (hundreds of reads on a busy host).
    tag = marker()
    proc = spawn(SLEEPER, tag)
    script = f"""
import checkers.proctable as table
from datetime import UTC, datetime
from checkers.base import CheckContext
from checkers.python_process import ProcessSettings, PythonProcessChecker
checker = PythonProcessChecker(ProcessSettings(cmdline={tag!r}))
ctx = CheckContext("p", datetime.now(UTC), 5)
first = checker.check(ctx)
table._last = None  # forget the scan: a scan now would leave one behind
second = checker.check(ctx)
print(first.details["pid"], second.details["pid"], table._last is None)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(proc.pid), str(proc.pid), "True"]
