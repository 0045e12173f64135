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
from datetime import timedelta
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
from server.core.units import Duration, DurationRange

TOTAL_MEMORY = psutil.virtual_memory().total


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
        self._tail = LogTail(Path(settings.log_file)) if settings.log_file else None

    def check(self, ctx: CheckContext) -> CheckResult:
        logs = self._tail.read_new(source=self.settings.log_file or "") if self._tail else []
        try:
            stat = self._find()
        except (OSError, ValueError) as exc:
            stat = None
            reason = str(exc)
        else:
            reason = ""
        if stat is None:
            return self._not_found(reason, logs)
        try:
            result = self._inspect(stat)
        except PermissionError:
            return CheckResult(
                Status.UNKNOWN, f"access denied reading process {stat.pid}", logs=logs
            )
        except (FileNotFoundError, ProcessLookupError):
            if self.settings.pidfile or self.settings.pid is not None:
                return self._not_found("process exited during the check", logs)
            # The shared scan (up to a tick old) still listed it: look again, afresh.
            stat = self._find(max_age=0.0)
            if stat is None:
                return self._not_found("", logs)
            try:
                result = self._inspect(stat)
            except (FileNotFoundError, ProcessLookupError):
                return self._not_found("process exited during the check", logs)
            except PermissionError:
                return CheckResult(
                    Status.UNKNOWN, f"access denied reading process {stat.pid}", logs=logs
                )
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

        Raises OSError (an unreadable pidfile) or ValueError (one without a pid).
        """
        s = self.settings
        if s.pidfile:
            text = Path(s.pidfile).read_text().strip()
            if not text.isdigit():
                raise ValueError(f"pidfile {s.pidfile} does not hold a pid: {text[:40]!r}")
            return _stat_or_none(int(text))
        if s.pid is not None:
            return _stat_or_none(s.pid)
        table = proctable.snapshot(max_age)
        last = self._last_ident
        if last is not None:
            seen = table.by_pid.get(last[0])
            if seen is not None and seen.start_ticks == last[1] and self._matches(seen):
                return _stat_or_none(seen.pid)  # the same process as last time
        candidates = [p for p in table.processes if self._matches(p)]
        if not candidates:
            return None
        # The oldest match is the service's main process, not a helper it spawned.
        oldest = min(candidates, key=lambda p: (p.start_ticks, p.pid))
        return _stat_or_none(oldest.pid)

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

    def _inspect(self, stat: proctable.ProcStat) -> CheckResult:
        """The verdict on ``stat``'s process; raises PermissionError (another user's
        process) or FileNotFoundError (it exited meanwhile) from reading its fds."""
        fds = proctable.num_fds(stat.pid)
        ident = (stat.pid, stat.start_ticks)
        same = ident == self._last_ident
        if not same and self._last_ident is not None:
            self.restarts += 1  # a new pid, or the same pid reused by a new process
        self._last_ident = ident
        cpu = self._cpu_percent(stat, same)
        rss = stat.rss_bytes
        memory = rss / TOTAL_MEMORY * 100  # psutil's memory_percent() re-reads /proc/meminfo
        threads = stat.num_threads
        uptime = max(0.0, time.time() - stat.create_time)
        status = stat.status
        metrics = [
            Metric("cpu_percent", cpu, "percent"),
            Metric("memory_percent", round(memory, 3), "percent"),
            Metric("rss_bytes", rss, "bytes"),
            Metric("num_threads", threads, "count"),
            Metric("num_fds", fds, "count"),
            Metric("uptime_seconds", round(uptime, 1), "seconds"),
            Metric("restarts", self.restarts, "count"),
        ]
        details = {"pid": stat.pid, "process_status": status, "restarts": self.restarts}

        def result(code: Status, message: str) -> CheckResult:
            return CheckResult(code, message, details, None, cpu, round(memory, 3), metrics)

        if status == psutil.STATUS_ZOMBIE:
            return result(Status.FAILED, f"pid {stat.pid} is a zombie (exited, not reaped)")
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
    try:
        return proctable.read_stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None
