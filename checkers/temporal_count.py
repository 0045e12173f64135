"""``temporal_count``: how many executions a visibility query matches (CountWorkflowExecutions).

The open-execution count Temporal users ask for (temporalio/temporal#3502):
``count_query: "WorkflowType='Payment' AND ExecutionStatus='Running'"`` gives the
metric ``count``, judged against ``thresholds`` above or below. With
``group_by: ExecutionStatus`` (server >= 1.22) the one call also gives one
metric per status, ``count_running``, ``count_failed`` … (tagged
``ExecutionStatus``). One visibility call per check. Counts come from the
visibility store, which trails the executions by up to a second or so.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from checkers.base import CheckContext, CheckResult, Metric, Settings, Status, invalid
from checkers.temporal import TemporalChecker, TemporalConnection, TemporalSession, ordered
from checkers.temporal_text import query_problem


class CountThresholds(Settings):
    """A count above ``above_*`` or below ``below_*`` gives that status (FAILED wins)."""

    above_degraded: int | None = Field(None, ge=0, le=10**12)
    above_failed: int | None = Field(None, ge=0, le=10**12)
    below_degraded: int | None = Field(None, ge=1, le=10**12)
    below_failed: int | None = Field(None, ge=1, le=10**12)

    @model_validator(mode="after")
    def _order(self) -> CountThresholds:
        ordered(
            self,
            ("above_degraded", "above_failed", "below"),
            ("below_failed", "below_degraded", "below"),
        )
        return self


class CountSettings(TemporalConnection):
    count_query: str
    group_by: Literal["ExecutionStatus"] | None = None
    thresholds: CountThresholds = CountThresholds()

    @field_validator("count_query")
    @classmethod
    def _query(cls, value: str) -> str:
        if not value.strip():
            raise invalid("expected a visibility query, e.g. \"WorkflowType='Payment'\"")
        problem = query_problem(value)
        if problem:
            raise invalid(f"expected a visibility query: {problem}")
        return value.strip()

    @model_validator(mode="after")
    def _one_group_by(self) -> CountSettings:
        if self.group_by and re.search(r"\bgroup\s+by\b", self.count_query, re.IGNORECASE):
            raise ValueError("count_query has its own GROUP BY: drop it or drop group_by")
        return self


def snake(status: str) -> str:
    """``ContinuedAsNew`` -> ``continued_as_new``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", status).lower()


class TemporalCountChecker(TemporalChecker[CountSettings]):
    Settings = CountSettings

    async def inspect(self, session: TemporalSession, ctx: CheckContext) -> CheckResult:
        s = self.settings
        query = f"{s.count_query} GROUP BY {s.group_by}" if s.group_by else s.count_query
        response = await session.count(query)
        total = int(response.count)
        metrics = [Metric("count", total, "count")]
        groups: dict[str, int] = {}
        for group in response.groups:
            values = [json.loads(p.data) for p in group.group_values]
            name = str(values[0]) if values else "none"
            groups[name] = int(group.count)
            metrics.append(
                Metric(f"count_{snake(name)}", int(group.count), "count", {s.group_by or "": name})
            )
        status, why = judge(total, s.thresholds)
        split = ", ".join(f"{name} {n}" for name, n in sorted(groups.items()))
        message = f"{total} executions match {s.count_query}" + (f" ({split})" if split else "")
        details = {"count": total, "query": s.count_query, **({"groups": groups} if groups else {})}
        return CheckResult(status, f"{message}{why}", details, metrics=metrics)


def judge(count: int, t: CountThresholds) -> tuple[Status, str]:
    """The status for ``count`` and the reason appended to the message ("" when OK)."""
    for status, limit, above in (
        (Status.FAILED, t.above_failed, True),
        (Status.FAILED, t.below_failed, False),
        (Status.DEGRADED, t.above_degraded, True),
        (Status.DEGRADED, t.below_degraded, False),
    ):
        if limit is not None and (count > limit if above else count < limit):
            return status, f": {'above' if above else 'below'} {limit}"
    return Status.OK, ""
