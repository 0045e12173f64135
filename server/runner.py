"""Run one check under a hard deadline so that nothing a checker does can escape.

The deadline is ``ctx.timeout`` seconds from the start of the check and covers
everything: DNS, connect, TLS, reading, a thread that never returns, a plugin
that ignores SIGTERM. At the deadline the checker's ``timeout_status`` is the
verdict, "timed out after 3.0 s"; async checkers are cancelled there, a
blocking checker's late result is dropped. A check that could not even start
(every thread busy) says so.

A blocking check still running after ``SLOW_AFTER`` seconds (local checks take
milliseconds) is taken for hung: the pool lends a replacement thread right
away, so the checks queued behind it start within that time, not at its
deadline. The caller learns of a thread still held at the deadline through
``on_overrun`` (the scheduler then starts no other run of that service until
the thread returns).

A checker that raises, or returns something that is not a well-formed
:class:`CheckResult`, yields UNKNOWN with the reason; the traceback becomes a
log entry so the cause is on the dashboard, not only in the daemon's output.
"""

from __future__ import annotations

import asyncio
import json
import math
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from checkers.base import (
    CheckContext,
    Checker,
    CheckResult,
    LogEntry,
    Metric,
    Status,
    timed_out_message,
)
from server.core.measures import BEYOND_LARGEST, COLUMN_UNITS, storable, stored
from server.core.pool import DeadlinePool
from server.core.text import clip, printable

VALUE_COLUMNS = tuple(COLUMN_UNITS)  # response_time_ms, cpu_usage, memory_usage
RENAMED_PREFIX = "perf_"  # a metric named like a column, with a value of its own
MAX_NAMED = 10  # metrics named in a result's metrics_refused / metrics_renamed
CLI_POOL_SIZE = 2
SLOW_AFTER = 0.5  # seconds a blocking check runs before its thread is replaced
_CODES = frozenset(int(s) for s in Status)


async def run_with_deadline(
    checker: Checker[Any],
    ctx: CheckContext,
    pool: DeadlinePool,
    on_overrun: Callable[[Future[Any]], None] | None = None,
) -> CheckResult:
    """The checker's result, or the verdict at ``ctx.timeout``; never raises (but cancels).

    ``on_overrun(work)`` is called when a blocking check's thread is still busy at the
    deadline (``work`` is done when the thread returns).
    """
    loop = asyncio.get_running_loop()
    work: Future[CheckResult] | None = None
    answer: asyncio.Future[CheckResult] | None = None
    lent = False
    try:
        async with asyncio.timeout_at(loop.time() + ctx.timeout) as deadline:
            if checker.is_async():
                raw: Any = await checker.check_async(ctx)
            else:
                work = pool.submit(checker.check, ctx)
                answer = asyncio.wrap_future(work)
                done, _pending = await asyncio.wait({answer}, timeout=SLOW_AFTER)
                if not done and work.running():
                    pool.overdue(work)  # taken for hung: the queue behind it goes on
                    lent = True
                raw = await answer
    except TimeoutError:
        if not deadline.expired():
            return checker_error(TimeoutError("a timeout inside the checker"))
        if answer is not None:
            answer.cancel()  # a late result or error is dropped, never reported
        return late_verdict(checker, ctx, pool, work, lent=lent, on_overrun=on_overrun)
    except Exception as exc:
        return checker_error(exc)
    return validated(raw)


def late_verdict(
    checker: Checker[Any],
    ctx: CheckContext,
    pool: DeadlinePool,
    work: Future[Any] | None,
    *,
    lent: bool,
    on_overrun: Callable[[Future[Any]], None] | None,
) -> CheckResult:
    """The verdict of a check at its deadline (its late result, if any, is dropped).

    ``work``: the pool task of a blocking check (None for an async one); cancelled
    here if still queued (it never starts: "not started …"), else, if its thread is
    still busy, a thread is lent unless ``lent`` already, and ``on_overrun(work)``
    is told.
    """
    # Cancelling the wait cancels a task still queued (wrap_future passes it on):
    # cancelled means it never started.
    if work is not None and (work.cancelled() or work.cancel()):
        return CheckResult(
            Status.UNKNOWN,
            f"not started within its {ctx.timeout:.1f} s timeout: all {pool.size} check "
            f"threads busy ({pool.overdue_count} held by hung checks)",
        )
    if work is not None and not work.done():
        if not lent:
            pool.overdue(work)
        if on_overrun is not None:
            on_overrun(work)
    what = checker.describe()
    message = timed_out_message(ctx.timeout)
    return CheckResult(checker.timeout_status, f"{what}: {message}" if what else message)


def run_check(checker: Checker[Any], ctx: CheckContext) -> CheckResult:
    """One check on a loop of its own (``lightbulb check``, tests), deadline included."""
    pool = DeadlinePool(CLI_POOL_SIZE, "lightbulb-check")

    async def once() -> CheckResult:
        from checkers.netio import close_loop_resources

        try:
            return await run_with_deadline(checker, ctx, pool)
        finally:
            await close_loop_resources()

    try:
        return asyncio.run(once())
    finally:
        pool.shutdown()


def checker_error(exc: BaseException) -> CheckResult:
    """UNKNOWN naming ``exc``, its traceback as an ERROR log entry."""
    reason = clip(printable(f"checker error: {type(exc).__name__}: {exc}"), 500)
    trace = "".join(traceback.format_exception(exc))
    return CheckResult(
        Status.UNKNOWN,
        reason,
        logs=[LogEntry("ERROR", reason, source="lightbulb.checker", stack_trace=trace)],
    )


def validated(result: Any) -> CheckResult:
    """``result`` with its status normalised, or UNKNOWN saying why it cannot be stored."""
    problem = garbage_reason(result)
    if problem:
        return CheckResult(Status.UNKNOWN, f"checker returned garbage: {problem}")
    result.status = Status(result.status)
    # One line of text for every checker: a plugin's output, an HTTP body or a Temporal
    # id carries no newline, NUL or bidi override into rows, pages, notices or the CLI.
    result.message = printable(result.message)
    # A metric beyond what can be stored and drawn (perfdata 'huge'=1e300) is left out
    # and named in the details, rather than failing the whole check or being clamped
    # into a value nobody measured; one under 1e-15 is rounding noise, stored as 0.
    kept: list[Metric] = []
    prior = result.details.get("metrics_refused")  # the checker's own (perfdata "x=nan")
    refused: list[str] = [str(r) for r in prior] if isinstance(prior, list) else []
    for m in result.metrics:
        if storable(m.value):
            kept.append(m)
        else:
            refused.append(f"{clip(m.name, 80)}={float(m.value):g}: {BEYOND_LARGEST}")
    if refused:
        result.details = {**result.details, "metrics_refused": _named(refused)}
    kept = [m if stored(m.value) == m.value else replace(m, value=0.0) for m in kept]
    result.metrics, renamed = own_names(result, kept)
    if renamed:
        result.details = {**result.details, "metrics_renamed": _named(renamed)}
    for name in VALUE_COLUMNS:
        value = getattr(result, name)
        if value is not None and stored(value) != value:
            setattr(result, name, 0.0)
    return result  # type: ignore[no-any-return]


def own_names(result: CheckResult, metrics: list[Metric]) -> tuple[list[Metric], list[str]]:
    """``metrics`` with no column's name on a value that is not the column's, and the
    renames as ``"cpu_usage -> perf_cpu_usage: …"`` lines.

    A metric named like a ``service_status`` column (``response_time_ms``, ``cpu_usage``,
    ``memory_usage``) is read, charted and listed as that column (:mod:`server.web.series`),
    so it may only repeat the column's own value, untagged (HTTP's ``response_time_ms``).
    Any other (a plugin's ``cpu_usage=50%`` where the check fills no CPU column, its
    ``response_time_ms=5ms`` beside the run time the column holds) is the checker's own
    measurement: it keeps its value under :data:`RENAMED_PREFIX` + its name (prefixed
    again while that name is taken), so it is neither lost nor mistaken for the column.
    """
    taken = {m.name for m in metrics}
    out, renamed = [], []
    for m in metrics:
        column = getattr(result, m.name) if m.name in VALUE_COLUMNS else None
        if m.name not in VALUE_COLUMNS or (not m.tags and column == m.value):
            out.append(m)
            continue
        name = RENAMED_PREFIX + m.name
        while name in taken:
            name = RENAMED_PREFIX + name
        taken.add(name)
        out.append(replace(m, name=name))
        holds = "no value" if column is None else f"{float(column):g}"
        renamed.append(f"{m.name} -> {name}: the {m.name} column holds {holds} for this check")
    return out, renamed


def _named(lines: list[str]) -> list[str]:
    """At most :data:`MAX_NAMED` lines, the last saying how many more there were."""
    if len(lines) <= MAX_NAMED:
        return lines
    return [*lines[: MAX_NAMED - 1], f"and {len(lines) - MAX_NAMED + 1} more"]


def garbage_reason(result: Any) -> str | None:
    """Why ``result`` cannot be stored, or None when it can."""
    if not isinstance(result, CheckResult):
        return f"expected a CheckResult, got {type(result).__name__}"
    if result.status not in _CODES:
        return f"status {result.status!r} is not a status code 0-5"
    if not isinstance(result.message, str):
        return "message is not a string"
    for name in VALUE_COLUMNS:
        value = getattr(result, name)
        if value is not None and (
            not isinstance(value, int | float) or not storable(value) or value < 0
        ):
            return f"{name} is {value!r}"
    if not all(
        isinstance(m, Metric) and isinstance(m.value, int | float) and math.isfinite(m.value)
        for m in result.metrics
    ):
        return "a metric is malformed or not a finite number"
    if not all(isinstance(entry, LogEntry) for entry in result.logs):
        return "a log entry is malformed"
    if not all(_plain(v) for v in result.details.values()):  # else json.dumps decides
        try:
            json.dumps(result.details, default=str, allow_nan=False)
        except (TypeError, ValueError):
            return "details are not JSON-serialisable"
    return None


def _plain(value: Any) -> bool:
    """A JSON scalar for sure (the common case), so no trial encoding is needed."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)
