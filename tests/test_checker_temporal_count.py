"""temporal_count against the session's real dev server: exact counts of known executions."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from checkers.base import CheckContext, Status
from checkers.temporal_count import CountSettings, TemporalCountChecker
from checkers.temporal_stuck import StuckSettings
from server.runner import run_check
from tests.conftest import free_port, wait_until
from tests.support import temporal_workflows as wf
from tests.support.temporal_server import Harness


def check(server: Harness, **settings: Any) -> Any:
    checker = TemporalCountChecker(CountSettings(address=server.address, **settings))
    return run_check(checker, CheckContext("count", datetime.now(UTC), 10))


def metrics(result: Any) -> dict[str, float]:
    return {m.name: m.value for m in result.metrics}


def settled(server: Harness, query: str, expected: int) -> None:
    """Visibility trails the executions by a moment: wait until it has them all."""

    def count() -> int:
        return int(server.run(server.client.count_workflows(query)).count)

    assert wait_until(lambda: count() == expected, 30), f"{query} never reached {expected}"


def test_a_count_query_over_known_executions_gives_the_exact_count(
    temporal_server: Harness,
) -> None:
    queue = f"count-{uuid.uuid4().hex[:8]}"
    ids = [temporal_server.start(wf.WaitForever.run, queue=queue) for _ in range(3)]
    try:
        query = f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
        settled(temporal_server, query, 3)
        result = check(temporal_server, count_query=query, thresholds={"above_degraded": 2})
    finally:
        temporal_server.terminate(*ids)
    assert metrics(result) == {"count": 3}
    assert result.status == Status.DEGRADED
    assert result.message == f"3 executions match {query}: above 2"


def test_group_by_execution_status_gives_one_metric_per_status(temporal_server: Harness) -> None:
    queue = f"count-{uuid.uuid4().hex[:8]}"
    with temporal_server.worker(queue, wf.WORKFLOWS, wf.ACTIVITIES):
        running = [temporal_server.start(wf.WaitForever.run, queue=queue) for _ in range(3)]
        for _ in range(2):
            temporal_server.start(wf.CompletesAtOnce.run, queue=queue)
        temporal_server.start(wf.FailsAtOnce.run, queue=queue)
        try:
            settled(temporal_server, f"TaskQueue = '{queue}' AND ExecutionStatus != 'Running'", 3)
            result = check(
                temporal_server, count_query=f"TaskQueue = '{queue}'", group_by="ExecutionStatus"
            )
        finally:
            temporal_server.terminate(*running)
    assert metrics(result) == {
        "count": 6,
        "count_running": 3,
        "count_completed": 2,
        "count_failed": 1,
    }
    tags = {m.name: m.tags for m in result.metrics}
    assert tags["count_running"] == {"ExecutionStatus": "Running"}
    assert result.status == Status.OK
    assert "(Completed 2, Failed 1, Running 3)" in result.message


def test_a_count_below_its_floor_fails(temporal_server: Harness) -> None:
    query = f"TaskQueue = 'nobody-{uuid.uuid4().hex[:8]}' AND ExecutionStatus = 'Running'"
    result = check(temporal_server, count_query=query, thresholds={"below_failed": 1})
    assert result.status == Status.FAILED and result.message.endswith(": below 1")
    assert metrics(result) == {"count": 0}


def test_a_query_the_server_refuses_is_unknown_with_its_reason(temporal_server: Harness) -> None:
    result = check(temporal_server, count_query="NoSuchAttribute = 'x'")
    assert result.status == Status.UNKNOWN
    assert "NoSuchAttribute" in result.message and temporal_server.address in result.message


def test_count_settings_refuse_an_empty_query_and_a_second_group_by() -> None:
    with pytest.raises(ValueError, match="expected a visibility query"):
        CountSettings(count_query="  ")
    with pytest.raises(ValueError, match="has its own GROUP BY"):
        CountSettings(
            count_query="TaskQueue='q' GROUP BY ExecutionStatus", group_by="ExecutionStatus"
        )
    with pytest.raises(ValueError):
        CountSettings(count_query="TaskQueue='q'", group_by="WorkflowType")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("WorkflowType='Payment", "a ' quote is not closed"),
        ('WorkflowType="Payment', 'a " quote is not closed'),
        ("(WorkflowType='Payment' AND (TaskQueue='q')", "1 '(' not closed"),
        ("WorkflowType='Payment')", "a ')' closes no '('"),
        ("WorkflowType='Payment' AND", "an operator (AND, OR, =, …) has no operand"),
        ("OR WorkflowType='Payment'", "an operator (AND, OR, =, …) has no operand"),
        ("ExecutionStatus =", "an operator (AND, OR, =, …) has no operand"),
    ],
)
def test_a_query_that_cannot_parse_is_refused_at_load(query: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"expected a visibility query: {problem}")):
        CountSettings(count_query=query)
    with pytest.raises(ValueError, match=re.escape(problem)):
        StuckSettings(query=query)


@pytest.mark.parametrize(
    "query",
    [
        "WorkflowType='Payment' AND ExecutionStatus='Running'",
        "WorkflowId = 'it\\'s (not' OR `Custom Attr` IN ('a', \"b)\")",
        "StartTime > '2024-01-01T00:00:00Z' AND (CloseTime IS NULL)",
    ],
)
def test_queries_with_quoted_operators_and_parentheses_load(query: str) -> None:
    assert CountSettings(count_query=query).count_query == query


def test_the_servers_query_error_gives_no_position_in_its_rewritten_query(
    temporal_server: Harness,
) -> None:
    result = check(temporal_server, count_query="WorkflowType = 'a' AND AND TaskQueue = 'b'")
    assert result.status == Status.UNKNOWN
    assert "position" not in result.message.lower(), result.message


def test_a_refused_connection_reads_as_a_sentence() -> None:
    address = f"127.0.0.1:{free_port()}"
    checker = TemporalCountChecker(CountSettings(address=address, count_query="TaskQueue='q'"))
    result = run_check(checker, CheckContext("count", datetime.now(UTC), 10))
    assert result.status == Status.UNKNOWN
    assert result.message == (
        f"Temporal at {address}: cannot connect to {address}: connection refused"
    )


def test_tls_to_a_plain_server_reads_as_a_failed_handshake(temporal_server: Harness) -> None:
    address = temporal_server.address
    checker = TemporalCountChecker(
        CountSettings(address=address, tls=True, count_query="TaskQueue='q'")
    )
    result = run_check(checker, CheckContext("count", datetime.now(UTC), 10))
    assert result.status == Status.UNKNOWN
    assert result.message.startswith(f"Temporal at {address}: TLS handshake failed with {address}")
    assert "tonic" not in result.message and "Error(" not in result.message
