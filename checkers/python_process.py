"""``python_process``: is a local process running, healthy and within limits.

The process is found by ``pidfile``, ``pid``, ``name`` or a ``cmdline`` regex.
``name`` and ``cmdline`` search one process-table scan per tick shared by every
check (:mod:`checkers.proctable`), which never holds the daemon, its ancestors
or its descendants. A pid is the same process only while its start time is:
a pid reused by another process counts as a restart, never as the old process.

Each check reads the process's figures from one ``/proc/<pid>/stat`` read plus
a listing of its fds (:func:`checkers.proctable.read_stat`), with psutil's
names and units; no ``psutil.Process`` per check.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import psutil
from pydantic import Field, model_validator

from checkers import proctable
from checkers.base import (
    CheckContext,
    Checker,
    CheckResult,
    LogEntry,
    Metric,
    Settings,
    Status,
    over_thresholds,
)
from checkers.logtail import LogTail
from server.core.files import read_whole
from server.core.text import clip
from server.core.units import Duration, DurationRange

TOTAL_MEMORY = psutil.virtual_memory().total
# A pidfile holds a pid and a newline (systemd's PIDFile=, start-stop-daemon); some
# add a second line. Anything longer than this is not a pidfile and is not read on.
PIDFILE_MAX = 256


# A process that runs none of its code: stopped by SIGSTOP/SIGTSTP (job control,
# `kill -STOP`) or held by a tracer (a debugger at a breakpoint, `strace` attaching).
FROZEN = {
    psutil.STATUS_STOPPED: "stopped (SIGSTOP or job control)",
    psutil.STATUS_TRACING_STOP: "stopped by a tracer (a debugger?)",
}


class BadPidfile(ValueError):
    """The pidfile is not a regular file, is too large or does not hold a pid."""


class ProcessThresholds(Settings):
    cpu_percent: float | None = Field(None, ge=0, le=100_000)  # 100 per core
    memory_percent: float | None = Field(None, ge=0, le=100)
    num_fds: int | None = Field(None, ge=0, le=10_000_000)
    num_threads: int | None = Field(None, ge=0, le=10_000_000)


class ProcessSettings(Settings):
    pidfile: str | None = None
    pid: int | None = Field(None, ge=1, le=4_194_304)  # Linux's pid_max ceiling
    name: str | None = None
    cmdline: str | None = None
    expect: Literal["running", "stopped"] = "running"
    startup_grace: Annotated[Duration, DurationRange("1s", "1d", zero=True)] = timedelta(0)
    thresholds: ProcessThresholds | None = None
    log_file: str | None = None

    @model_validator(mode="after")
    def _one_matcher(self) -> ProcessSettings:
        given = [k for k in ("pidfile", "pid", "name", "cmdline") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of pidfile, pid, name or cmdline")
        if self.cmdline is not None:
            try:
                re.compile(self.cmdline)
            except re.error as exc:
                raise ValueError(f"cmdline is not a valid regular expression: {exc}") from None
        return self


class PythonProcessChecker(Checker[ProcessSettings]):
    Settings = ProcessSettings

    def __init__(self, settings: ProcessSettings) -> None:
        super().__init__(settings)
        self._pattern = re.compile(settings.cmdline) if settings.cmdline else None
        self._last_ident: tuple[int, int] | None = None  # (pid, start ticks) last seen
        self._last_cpu: tuple[float, float] | None = None  # (cpu seconds, monotonic time)
        self.restarts = 0
        self._frozen_since: tuple[tuple[int, int], datetime] | None = None  # (ident, first seen)
        self._tail = LogTail(Path(settings.log_file)) if settings.log_file else None

    def check(self, ctx: CheckContext) -> CheckResult:
        logs = self._tail.read_new(source=self.settings.log_file or "") if self._tail else []
        try:
            stat = self._find()
        except BadPidfile as exc:  # whatever `expect` says: the file is at fault, not the process
            return CheckResult(Status.FAILED, str(exc), logs=logs)
        except (OSError, ValueError) as exc:
            stat = None
            reason = str(exc)
        else:
            reason = ""
        if stat is None:
            return self._not_found(reason, logs)
        try:
            result = self._inspect(stat, ctx.now)
        except (FileNotFoundError, ProcessLookupError):
            if self.settings.pidfile or self.settings.pid is not None:
                return self._not_found("process exited during the check", logs)
            # The shared scan (up to a tick old) still listed it: look again, afresh.
            stat = self._find(max_age=0.0)
            if stat is None:
                return self._not_found("", logs)
            try:
                result = self._inspect(stat, ctx.now)
            except (FileNotFoundError, ProcessLookupError):
                return self._not_found("process exited during the check", logs)
        result.logs.extend(logs)
        return result

    def _not_found(self, reason: str, logs: list[LogEntry]) -> CheckResult:
        what = reason or f"no process matches {self._describe_matcher()}"
        if self.settings.expect == "stopped":
            return CheckResult(Status.STOPPED, f"not running (expected): {what}", logs=logs)
        return CheckResult(Status.FAILED, f"not running: {what}", logs=logs)

    def _describe_matcher(self) -> str:
        s = self.settings
        if s.pidfile:
            return f"pidfile {s.pidfile}"
        if s.pid is not None:
            return f"pid {s.pid}"
        if s.name:
            return f"name {s.name!r}"
        return f"cmdline /{s.cmdline}/"

    def _find(self, max_age: float = proctable.MAX_AGE) -> proctable.ProcStat | None:
        """The watched process's figures now; None if no such process.

        Raises :class:`BadPidfile`, OSError (an unreadable pidfile) or ValueError
        (one without a pid).
        """
        s = self.settings
        if s.pidfile:
            return _stat_or_none(self._read_pidfile(s.pidfile))
        if s.pid is not None:
            return _stat_or_none(s.pid)
        last = self._last_ident
        if last is not None:  # the same process as last time? (read afresh, no scan)
            seen = proctable.process(last[0])
            if seen is not None and seen.start_ticks == last[1] and self._matches(seen):
                return _stat_or_none(seen.pid)
        table = proctable.snapshot(max_age)
        candidates = [p for p in table.processes if self._matches(p)]
        if not candidates:
            return None
        # The oldest match is the service's main process, not a helper it spawned.
        oldest = min(candidates, key=lambda p: (p.start_ticks, p.pid))
        return _stat_or_none(oldest.pid)

    @staticmethod
    def _read_pidfile(path: str) -> int:
        """The pid in ``path`` (digits, blanks around them ignored). Raises :class:`BadPidfile`
        (not a regular file, over ``PIDFILE_MAX`` bytes, no pid), OSError (missing)."""
        data = read_whole(path, PIDFILE_MAX, "pidfile", BadPidfile, ": not a pidfile")
        text = data.decode("utf-8", "replace").strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"pidfile {path} does not hold a pid: {clip(text, 40)!r}")
        return int(text)

    def _frozen(
        self, ident: tuple[int, int], status: str, now: datetime
    ) -> tuple[Status, str] | None:
        """The verdict on a stopped or traced process, None when it runs.

        The first check that finds it stopped says DEGRADED (a debugger's breakpoint or
        a `kill -STOP` / `-CONT` pair is over within moments); one that finds it still
        stopped a check later says FAILED: it serves nothing, as if it were dead.
        """
        why = FROZEN.get(status)
        if why is None:
            self._frozen_since = None
            return None
        if self._frozen_since is None or self._frozen_since[0] != ident:
            self._frozen_since = (ident, now)
            return Status.DEGRADED, f"pid {ident[0]} is {why}: it runs none of its code"
        seconds = (now - self._frozen_since[1]).total_seconds()
        return (
            Status.FAILED,
            f"pid {ident[0]} is {why} for {seconds:.0f} s: it runs none of its code",
        )

    def _matches(self, process: proctable.ProcessInfo) -> bool:
        if self.settings.name is not None:
            return process.name == self.settings.name
        assert self._pattern is not None
        return bool(self._pattern.search(process.cmdline))

    def _cpu_percent(self, stat: proctable.ProcStat, same: bool) -> float:
        """psutil's ``cpu_percent(None)``: CPU time over wall time since the last check of
        the same process, 100 per core, one decimal; 0.0 the first time."""
        now = time.monotonic()
        last, self._last_cpu = self._last_cpu, (stat.cpu_seconds, now)
        if not same or last is None or now <= last[1]:
            return 0.0
        return round((stat.cpu_seconds - last[0]) / (now - last[1]) * 100, 1)

    def _inspect(self, stat: proctable.ProcStat, now: datetime) -> CheckResult:
        """The verdict on ``stat``'s process; raises FileNotFoundError if it exited meanwhile.

        ``/proc/<pid>/stat`` is readable for any process; its fds only for the owner
        or with CAP_SYS_PTRACE (not under the shipped unit): then ``num_fds`` is left
        out and named in ``details["not_readable"]``, and the verdict rests on the rest.
        """
        try:
            fds: int | None = proctable.num_fds(stat.pid)
        except PermissionError:
            fds = None
        ident = (stat.pid, stat.start_ticks)
        same = ident == self._last_ident
        if not same and self._last_ident is not None:
            self.restarts += 1  # a new pid, or the same pid reused by a new process
        self._last_ident = ident
        cpu = self._cpu_percent(stat, same)
        rss = stat.rss_bytes
        memory = round(rss / TOTAL_MEMORY * 100, 3)  # psutil's memory_percent() re-reads meminfo
        threads = stat.num_threads
        uptime = max(0.0, time.time() - stat.create_time)
        status = stat.status
        metrics = [
            Metric(name, value, unit)
            for name, value, unit in (
                ("cpu_percent", cpu, "percent"),
                ("memory_percent", memory, "percent"),
                ("rss_bytes", rss, "bytes"),
                ("num_threads", threads, "count"),
                ("num_fds", fds, "count"),
                ("uptime_seconds", round(uptime, 1), "seconds"),
                ("restarts", self.restarts, "count"),
            )
            if value is not None
        ]
        details: dict[str, object] = {
            "pid": stat.pid,
            "process_status": status,
            "restarts": self.restarts,
        }
        if fds is None:
            # another user's process under the shipped unit (no CAP_SYS_PTRACE):
            # /proc/PID/fd is closed to us; the verdict rests on what could be read
            details["not_readable"] = "num_fds (access denied)"

        def result(code: Status, message: str) -> CheckResult:
            return CheckResult(code, message, details, None, cpu, memory, metrics)

        if status == psutil.STATUS_ZOMBIE:
            return result(Status.FAILED, f"pid {stat.pid} is a zombie (exited, not reaped)")
        frozen = self._frozen(ident, status, now)
        if frozen is not None:
            return result(*frozen)
        if uptime < self.settings.startup_grace.total_seconds():
            return result(Status.STARTING, f"pid {stat.pid} started {uptime:.0f}s ago")
        breaches = over_thresholds(
            {"cpu_percent": cpu, "memory_percent": memory, "num_fds": fds, "num_threads": threads},
            self.settings.thresholds,
        )
        if breaches:
            return result(Status.DEGRADED, f"pid {stat.pid}: " + ", ".join(breaches))
        return result(Status.OK, f"pid {stat.pid} running for {uptime:.0f}s")


def _stat_or_none(pid: int) -> proctable.ProcStat | None:
    """``pid``'s figures, or None when there is no such process."""
    try:
        return proctable.read_stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None
