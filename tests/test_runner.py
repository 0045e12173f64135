"""A checker that raises or returns garbage yields UNKNOWN with the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from checkers.base import CheckContext, Checker, CheckResult, Metric, Status
from server.runner import run_check

CTX = CheckContext("svc", datetime(2026, 11, 22, tzinfo=UTC), 5)


class Returns(Checker):
    def __init__(self, value: Any) -> None:
        super().__init__(None)
        self.value = value

    def check(self, ctx: CheckContext) -> Any:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def test_raising_checker_is_unknown_with_traceback_logged() -> None:
    result = run_check(Returns(KeyError("missing-key")), CTX)
    assert result.status == Status.UNKNOWN
    assert result.message == "checker error: KeyError: 'missing-key'"
    assert result.logs[0].stack_trace and "KeyError" in result.logs[0].stack_trace


def test_garbage_results_are_unknown() -> None:
    cases = {
        "expected a CheckResult, got dict": {"status": 0},
        "status 9 is not a status code 0-5": CheckResult(9, "x"),  # type: ignore[arg-type]
        "message is not a string": CheckResult(Status.OK, None),  # type: ignore[arg-type]
        "response_time_ms is -5": CheckResult(Status.OK, "x", response_time_ms=-5),
        "a metric is malformed or not a finite number": CheckResult(
            Status.OK, "x", metrics=[Metric("m", float("nan"))]
        ),
        "details are not JSON-serialisable": CheckResult(
            Status.OK, "x", details={"k": float("inf")}
        ),
    }
    for reason, value in cases.items():
        result = run_check(Returns(value), CTX)
        assert (result.status, result.message) == (
            Status.UNKNOWN,
            f"checker returned garbage: {reason}",
        )


def test_int_status_is_normalised() -> None:
    assert run_check(Returns(CheckResult(1, "slow")), CTX).status is Status.DEGRADED  # type: ignore[arg-type]
