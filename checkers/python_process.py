"""``python_process``: is a local process running, healthy and within limits (psutil).

The process is found by ``pidfile``, ``pid``, ``name`` or a ``cmdline`` regex.
``name`` and ``cmdline`` search one process-table scan per tick shared by every
check (:mod:`checkers.proctable`), which never holds the daemon, its ancestors
or its descendants. A pid is the same process only while its create time is:
a pid reused by another process counts as a restart, never as the old process.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
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
from checkers.files import NotRegularFile, read_capped
from checkers.logtail import LogTail
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
        self._process: psutil.Process | None = None
        self._last_ident: tuple[int, float] | None = None
        self.restarts = 0
        self._frozen_since: tuple[tuple[int, float], datetime] | None = None  # (ident, first seen)
        self._tail = LogTail(Path(settings.log_file)) if settings.log_file else None

    def check(self, ctx: CheckContext) -> CheckResult:
        logs = self._tail.read_new(source=self.settings.log_file or "") if self._tail else []
        try:
            process = self._find()
        except psutil.AccessDenied as exc:
            return CheckResult(
                Status.UNKNOWN, f"access denied reading process {exc.pid}", logs=logs
            )
        except BadPidfile as exc:  # whatever `expect` says: the file is at fault, not the process
            return CheckResult(Status.FAILED, str(exc), logs=logs)
        except (OSError, ValueError) as exc:
            process = None
            reason = str(exc)
        else:
            reason = ""
        if process is None:
            return self._not_found(reason, logs)
        try:
            result = self._inspect(process, ctx.now)
        except psutil.NoSuchProcess:
            self._process = None
            if self.settings.pidfile or self.settings.pid is not None:
                return self._not_found("process exited during the check", logs)
            # The shared scan (up to a tick old) still listed it: look again, afresh.
            process = self._find(max_age=0.0)
            if process is None:
                return self._not_found("", logs)
            try:
                result = self._inspect(process, ctx.now)
            except psutil.NoSuchProcess:
                return self._not_found("process exited during the check", logs)
        except psutil.AccessDenied:
            return CheckResult(
                Status.UNKNOWN, f"access denied reading process {process.pid}", logs=logs
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

    def _find(self, max_age: float = proctable.MAX_AGE) -> psutil.Process | None:
        s = self.settings
        if s.pidfile:
            return self._same_or_new(self._read_pidfile(s.pidfile))
        if s.pid is not None:
            return self._same_or_new(s.pid)
        table = proctable.snapshot(max_age)
        cached = self._process
        if cached is not None:
            seen = table.by_pid.get(cached.pid)
            if (
                seen is not None
                and seen.create_time == cached.create_time()
                and self._matches(seen)
            ):
                return cached
        candidates = [p for p in table.processes if self._matches(p)]
        if not candidates:
            return None
        # The oldest match is the service's main process, not a helper it spawned.
        oldest = min(candidates, key=lambda p: (p.create_time, p.pid))
        return self._same_or_new(oldest.pid)

    @staticmethod
    def _read_pidfile(path: str) -> int:
        """The pid in ``path`` (digits, blanks around them ignored). Raises :class:`BadPidfile`
        (not a regular file, over ``PIDFILE_MAX`` bytes, no pid), OSError (missing)."""
        try:
            data, more = read_capped(path, PIDFILE_MAX)
        except NotRegularFile as exc:
            raise BadPidfile(f"pidfile {path} is not a regular file ({exc.kind})") from None
        if more:
            raise BadPidfile(f"pidfile {path} is larger than {PIDFILE_MAX} bytes: not a pidfile")
        text = data.decode("utf-8", "replace").strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"pidfile {path} does not hold a pid: {text[:40]!r}")
        return int(text)

    def _frozen(
        self, ident: tuple[int, float], status: str, now: datetime
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

    def _same_or_new(self, pid: int) -> psutil.Process | None:
        """The cached Process if ``pid`` is still the process it was (same create time;
        it keeps the CPU counter), else a new one; None if no such pid."""
        try:
            fresh = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None
        cached = self._process
        if cached is not None and cached.pid == pid and cached.create_time() == fresh.create_time():
            return cached
        return fresh

    def _matches(self, process: proctable.ProcessInfo) -> bool:
        if self.settings.name is not None:
            return process.name == self.settings.name
        assert self._pattern is not None
        return bool(self._pattern.search(process.cmdline))

    def _inspect(self, process: psutil.Process, now: datetime) -> CheckResult:
        ident = (process.pid, process.create_time())
        if process is not self._process:
            if self._last_ident is not None and ident != self._last_ident:
                self.restarts += 1  # a new pid, or the same pid reused by a new process
            self._process = process
            with contextlib.suppress(psutil.AccessDenied):  # then cpu_percent is not readable
                process.cpu_percent(None)  # primes the counter; the next check reads a real value
        self._last_ident = ident
        unreadable: list[str] = []
        with process.oneshot():
            status = process.status()  # existence and state: readable for any process
            uptime = max(0.0, time.time() - process.create_time())
            readings = {name: _read(read, process, name, unreadable) for name, read in READINGS}
        cpu, rss, threads, fds = (
            readings[n] for n in ("cpu_percent", "rss", "num_threads", "num_fds")
        )
        memory = None if rss is None else round(rss / TOTAL_MEMORY * 100, 3)
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
            "pid": process.pid,
            "process_status": status,
            "restarts": self.restarts,
        }
        if unreadable:
            # e.g. another user's process under the shipped unit (no CAP_SYS_PTRACE):
            # /proc/PID/fd is closed to us; the verdict rests on what could be read
            details["not_readable"] = ", ".join(unreadable) + " (access denied)"

        def result(code: Status, message: str) -> CheckResult:
            return CheckResult(code, message, details, None, cpu, memory, metrics)

        if status == psutil.STATUS_ZOMBIE:
            return result(Status.FAILED, f"pid {process.pid} is a zombie (exited, not reaped)")
        frozen = self._frozen(ident, status, now)
        if frozen is not None:
            return result(*frozen)
        if uptime < self.settings.startup_grace.total_seconds():
            return result(Status.STARTING, f"pid {process.pid} started {uptime:.0f}s ago")
        breaches = over_thresholds(
            {"cpu_percent": cpu, "memory_percent": memory, "num_fds": fds, "num_threads": threads},
            self.settings.thresholds,
        )
        if breaches:
            return result(Status.DEGRADED, f"pid {process.pid}: " + ", ".join(breaches))
        return result(Status.OK, f"pid {process.pid} running for {uptime:.0f}s")


def _read(
    read: Callable[[psutil.Process], float], process: psutil.Process, name: str, denied: list[str]
) -> float | None:
    """``read(process)``, or None (its name added to ``denied``) when access is denied."""
    try:
        return read(process)
    except psutil.AccessDenied:
        denied.append(name)
        return None


# What a check reads beyond existence and state; any may be closed to an unprivileged
# daemon (num_fds lists /proc/PID/fd, which only the owner or CAP_SYS_PTRACE may read).
READINGS: tuple[tuple[str, Callable[[psutil.Process], float]], ...] = (
    ("cpu_percent", lambda p: p.cpu_percent(None)),
    ("rss", lambda p: p.memory_info().rss),
    ("num_threads", lambda p: p.num_threads()),
    ("num_fds", lambda p: p.num_fds()),
)
