"""Workflows and activities the Temporal checker tests run on a real dev server.

They live in their own module because the temporalio sandbox re-imports
workflow modules; test modules with fixtures do not belong in there.
"""

from __future__ import annotations

import asyncio
import threading
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
class FailsForTheLog:
    """Fails at once (its own type: only tests/test_temporal_failed_runs.py starts it)."""

    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("ledger out of balance", type="LedgerError", non_retryable=True)


@workflow.defn
class RunsFiveSeconds:
    @workflow.run
    async def run(self) -> None:
        await asyncio.sleep(5)


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


@workflow.defn
class RetriesForever:
    """An activity that always fails, retried without limit (Temporal's default policy)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            always_fails,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0
            ),
        )


@workflow.defn
class FailsWorkflowTask:
    """A bug in workflow code (not an ApplicationError): the workflow task fails, retried."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("bug in workflow code: division of the ledger by zero")


# -- non-determinism: the same workflow name, changed code between two workers -------------
@activity.defn
async def reserve_stock() -> str:
    return "reserved"


@activity.defn
async def charge_card() -> str:
    return "charged"


@workflow.defn(name="Evolving")
class EvolvingV1:
    """Version 1: reserve stock, then wait for the `proceed` signal."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(reserve_stock, start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self.go)

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


@workflow.defn(name="Evolving")
class EvolvingV2:
    """Version 2 changed the first step without versioning: replaying v1 history fails."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(charge_card, start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self.go)

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


# -- workflow tasks that time out: code that blocks past the task timeout -------------------
RELEASE_BLOCKED = threading.Event()  # set by the test that is done with BlocksWorkflowTask


@workflow.defn(sandboxed=False)
class BlocksWorkflowTask:
    """Blocks its workflow task (started with a 1 s task timeout) until RELEASE_BLOCKED."""

    @workflow.run
    async def run(self) -> None:
        RELEASE_BLOCKED.wait(60)


# -- activities that hold their worker: hung heartbeats, a saturated queue ------------------
RELEASE_ACTIVITIES = threading.Event()


@activity.defn
async def heartbeats_once_then_hangs() -> None:
    activity.heartbeat("started")
    await asyncio.to_thread(RELEASE_ACTIVITIES.wait, 120)


@activity.defn
async def holds_a_slot() -> None:
    await asyncio.to_thread(RELEASE_ACTIVITIES.wait, 120)


@workflow.defn
class HeartbeatHangs:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            heartbeats_once_then_hangs, start_to_close_timeout=timedelta(minutes=10)
        )


@workflow.defn
class FansOut:
    """Three activities at once: with one activity slot per worker, two wait in the backlog."""

    @workflow.run
    async def run(self) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    holds_a_slot, start_to_close_timeout=timedelta(minutes=10)
                )
                for _ in range(3)
            )
        )


WORKFLOWS = [
    WaitForever,
    CompletesAtOnce,
    FailsAtOnce,
    SleepsLong,
    RunsFiveSeconds,
    ContinuesOnce,
    RetriesActivity,
]
ACTIVITIES = [always_fails]
