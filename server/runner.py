"""Run one check so that nothing a checker does can escape as an exception.

A checker that raises, or returns something that is not a well-formed
:class:`CheckResult`, yields UNKNOWN with the reason; the traceback becomes a
log entry so the cause is on the dashboard, not only in the daemon's output.
"""

from __future__ import annotations

import json
import math
import traceback
from typing import Any

from checkers.base import CheckContext, Checker, CheckResult, LogEntry, Metric, Status


def run_check(checker: Checker[Any], ctx: CheckContext) -> CheckResult:
    try:
        result: Any = checker.check(ctx)
    except Exception as exc:
        reason = f"checker error: {type(exc).__name__}: {exc}"[:500]
        trace = traceback.format_exc()
        return CheckResult(
            Status.UNKNOWN,
            reason,
            logs=[LogEntry("ERROR", reason, source="lightbulb.checker", stack_trace=trace)],
        )
    problem = garbage_reason(result)
    if problem:
        return CheckResult(Status.UNKNOWN, f"checker returned garbage: {problem}")
    result.status = Status(result.status)
    return result  # type: ignore[no-any-return]


def garbage_reason(result: Any) -> str | None:
    """Why ``result`` cannot be stored, or None when it can."""
    if not isinstance(result, CheckResult):
        return f"expected a CheckResult, got {type(result).__name__}"
    if result.status not in {s.value for s in Status}:
        return f"status {result.status!r} is not a status code 0-5"
    if not isinstance(result.message, str):
        return "message is not a string"
    for name in ("response_time_ms", "cpu_usage", "memory_usage"):
        value = getattr(result, name)
        if value is not None and (
            not isinstance(value, int | float) or not math.isfinite(value) or value < 0
        ):
            return f"{name} is {value!r}"
    if not all(
        isinstance(m, Metric) and isinstance(m.value, int | float) and math.isfinite(m.value)
        for m in result.metrics
    ):
        return "a metric is malformed or not a finite number"
    if not all(isinstance(entry, LogEntry) for entry in result.logs):
        return "a log entry is malformed"
    try:
        json.dumps(result.details, default=str, allow_nan=False)
    except (TypeError, ValueError):
        return "details are not JSON-serialisable"
    return None
