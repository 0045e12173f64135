"""Workflows and activities the Temporal checker tests run on a real dev server.

They live in their own module because the temporalio sandbox re-imports
workflow modules; test modules with fixtures do not belong in there.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError


@activity.defn
async def always_fails() -> None:
    raise ApplicationError("downstream API returned 503")


@workflow.defn
class WaitForever:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn
class CompletesAtOnce:
    @workflow.run
    async def run(self) -> str:
        return "done"


@workflow.defn
class FailsAtOnce:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError(
            "payment ledger out of balance", type="LedgerError", non_retryable=True
        )


@workflow.defn
class SleepsLong:
    @workflow.run
    async def run(self) -> None:
        await asyncio.sleep(3600)


@workflow.defn
class ContinuesOnce:
    @workflow.run
    async def run(self, generation: int) -> None:
        if generation == 0:
            workflow.continue_as_new(1)
        await workflow.wait_condition(lambda: False)


@workflow.defn
class RetriesActivity:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            always_fails,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=1000,
            ),
        )


WORKFLOWS = [WaitForever, CompletesAtOnce, FailsAtOnce, SleepsLong, ContinuesOnce, RetriesActivity]
ACTIVITIES = [always_fails]
