"""Statuses order by severity, not by code, in Python and in SQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checkers.base import CheckResult
from server.alerting.conditions import parse_condition
from server.alerting.evaluate import evaluate
from server.alerting.history import History
from server.core import status
from server.core.status import Status

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)

# What each comparison in a rule matches; the README's severity table says the same.
MATCHES = {
    "status >= FAILED": {Status.FAILED},
    "status >= UNKNOWN": {Status.UNKNOWN, Status.FAILED},
    "status >= DEGRADED": {Status.DEGRADED, Status.UNKNOWN, Status.FAILED},
    "status > OK": set(Status) - {Status.OK},
    "status == STOPPED": {Status.STOPPED},
    "status != OK": set(Status) - {Status.OK},
    "status <= STARTING": {Status.OK, Status.STOPPED, Status.STARTING},
    "status >= 2": {Status.FAILED},  # a code is read as that status
}


def _holds(condition: str, observed: Status) -> bool:
    history = History(interval=10.0, flap_window=21)
    history.add(CheckResult(observed, "x"), NOW, timedelta(minutes=5), timedelta(hours=1))
    holds, value = evaluate(parse_condition(condition), history, 0.0, timedelta(0), NOW)
    assert value == float(observed)
    return holds


@pytest.mark.parametrize("condition", sorted(MATCHES))
def test_status_conditions_compare_by_severity(condition: str):
    assert {s for s in Status if _holds(condition, s)} == MATCHES[condition]


def test_starting_stopped_and_unknown_are_not_failures():
    for observed in (Status.STARTING, Status.STOPPED, Status.UNKNOWN):
        assert not _holds("status >= FAILED", observed)


def test_worst_follows_severity_and_up_is_ok_or_degraded():
    assert status.worst([Status.STOPPED, Status.DEGRADED, Status.UNKNOWN]) is Status.UNKNOWN
    assert status.worst([Status.STOPPED, Status.STARTING]) is Status.STARTING
    assert status.worst([Status.UNKNOWN, Status.FAILED]) is Status.FAILED
    assert status.worst([]) is Status.OK
    assert [s for s in Status if status.is_up(s)] == [Status.OK, Status.DEGRADED]
    with pytest.raises(ValueError):
        status.severity(9)


def test_sql_worst_and_up_agree_with_python(store):
    codes = [int(s) for s in Status]
    rows = ", ".join(f"({c})" for c in codes)
    for size in range(1, len(codes) + 1):
        for start in range(len(codes)):
            group = [codes[(start + i) % len(codes)] for i in range(size)]
            values = ", ".join(f"({c})" for c in group)
            got = store.query(
                f"SELECT {status.sql_worst('c')} AS w FROM values('c UInt8', {values})"
            )[0]["w"]
            assert got == int(status.worst(group)), group
    up = store.query(
        f"SELECT c, {status.sql_up('c')} AS up FROM values('c UInt8', {rows}) ORDER BY c"
    )
    assert [bool(r["up"]) for r in up] == [status.is_up(c) for c in codes]
