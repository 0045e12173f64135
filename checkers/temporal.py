"""What every Temporal service type shares: connection settings, the client, the calls.

``temporal_workflow``, ``temporal_task_queue``, ``temporal_schedule``,
``temporal_stuck`` and ``temporal_count`` all take ``address``, ``namespace``,
``tls`` and ``api_key`` (:class:`TemporalConnection`) and run on the check loop
under the check's deadline. One client per (address, namespace, TLS, API key)
and loop is shared by every check, so a thousand checks hold one gRPC
connection. Each check talks to the server through a :class:`TemporalSession`:
its visibility calls (count, list, list schedules, describe task queue) first
take a token from the address's budget (:mod:`checkers.temporal_budget`), and
every call is given the time left before the deadline as its gRPC timeout.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from pydantic import field_validator
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    CountWorkflowExecutionsResponse,
    DescribeScheduleRequest,
    DescribeScheduleResponse,
    DescribeTaskQueueRequest,
    DescribeTaskQueueResponse,
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
    GetWorkflowExecutionHistoryReverseRequest,
    ListSchedulesRequest,
    ListSchedulesResponse,
    ListWorkflowExecutionsRequest,
    ListWorkflowExecutionsResponse,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from checkers.base import CheckContext, Checker, CheckResult, Settings, Status, invalid
from checkers.base import timed_out_message as timed_out
from checkers.netio import loop_local
from checkers.temporal_budget import BudgetExhausted, budget
from checkers.temporal_text import connect_reason, server_query_error
from checkers.temporal_tls import TemporalTls, client_tls, tls_key
from server.core.secret import SecretStr
from server.core.text import clip, printable, printable_tree, shown

SettingsT = TypeVar("SettingsT", bound="TemporalConnection")
DEADLINE_MARGIN = 0.05  # seconds kept between a call's budget wait and the deadline
ID_FIELDS = ("workflow_id", "workflow_type", "task_queue", "schedule_id", "schedule_prefix")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NAMESPACE = re.compile(r"[\x20-\x7e]{1,1000}")
HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+")


class TemporalConnection(Settings):
    """The server a Temporal check talks to; every ``temporal_*`` block has these keys.

    ``address`` is ``host:port`` (a name, an IPv4 address or a bracketed IPv6 one;
    port 1 to 65535; no scheme: TLS is the ``tls`` key), ``namespace`` printable
    ASCII without surrounding spaces (gRPC carries it in a header, which refuses
    anything else; the server accepts the rest). Both are checked at load
    (:func:`address_problem`), since the SDK would only fail at the first check.
    """

    address: str = "localhost:7233"
    namespace: str = "default"
    tls: bool | TemporalTls = False
    api_key: SecretStr | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        problem = address_problem(value)
        if problem:
            raise invalid(problem)
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not value.strip():
            raise invalid("expected a namespace name, e.g. default")
        if value != value.strip() or not NAMESPACE.fullmatch(value):
            raise invalid(
                "expected a namespace name of printable ASCII characters without leading "
                "or trailing spaces (control characters and non-ASCII cannot be sent)"
            )
        return value

    # Every id or name a subclass takes (one rule for all Temporal types).
    @field_validator(*ID_FIELDS, check_fields=False)
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise invalid("expected a non-empty name (leave the key out if it does not apply)")
        if value != value.strip() or CONTROL.search(value):
            raise invalid(
                "expected a name without leading or trailing spaces or control characters "
                "(a YAML block scalar adds a newline: use a plain or quoted string)"
            )
        if len(value) > 1000:
            raise invalid("expected at most 1000 characters (Temporal's default maxIDLength)")
        return value


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a usable ``host:port`` (worded as the fix), or None."""
    if not address.strip():
        why = ", not an empty value"
    elif "://" in address:
        why = " without a scheme (for TLS set tls: true)"
    elif ":" not in address:
        why = ": the port is missing (Temporal's default is 7233)"
    else:
        host, _, port = address.rpartition(":")
        if not host:
            why = ": the host is missing"
        elif not HOST.fullmatch(host) or (":" in host and not host.startswith("[")):
            why = ": the host has characters a host name cannot have"
        elif not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            why = " with a port 1 to 65535"
        else:
            return None
    return f"expected host:port{why} (e.g. temporal.example.com:7233 or [::1]:7233)"


def ordered(model: Any, *pairs: tuple[str, str, str]) -> None:
    """Raise ValueError (worded as the fix) for each ``(lower, higher, what)`` pair of
    ``model``'s thresholds, both set, where ``lower`` is not below ``higher``: a
    DEGRADED level at or past the FAILED one could never be reached."""

    def shown_value(value: Any) -> str:
        return age(value) if isinstance(value, timedelta) else f"{value:g}"

    wrong = [
        f"{lo} ({shown_value(getattr(model, lo))}) must be {what} {hi}"
        f" ({shown_value(getattr(model, hi))})"
        for lo, hi, what in pairs
        if getattr(model, lo) is not None
        and getattr(model, hi) is not None
        and not getattr(model, lo) < getattr(model, hi)
    ]
    if wrong:
        raise ValueError("; ".join(wrong) + ": otherwise the DEGRADED level is never reached")


async def shared_client(s: TemporalConnection) -> Client:
    """The running loop's client for this server and namespace, connected on first use."""
    clients: dict[tuple[str, str, str, str], Client] = loop_local("temporal-clients", dict)
    key = (s.address, s.namespace, tls_key(s.tls), s.api_key.reveal() if s.api_key else "")
    if key not in clients:
        clients[key] = await Client.connect(
            s.address, namespace=s.namespace, tls=client_tls(s.tls), api_key=key[3] or None
        )
    return clients[key]


def age(elapsed: timedelta) -> str:
    """A short human span: ``45s``, ``2m05s``, ``3h02m``, ``2d03h`` (never negative)."""
    seconds = max(0, int(elapsed.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def quote(value: str) -> str:
    """A visibility-query string literal (the query language has no parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class TemporalSession:
    """One check's calls to one server, under one deadline (``loop.time()`` seconds).

    Visibility calls wait for the address's budget and count in ``visibility_calls``.
    Raises :class:`~temporalio.service.RPCError` as the server answers and
    :class:`~checkers.temporal_budget.BudgetExhausted` when the budget cannot
    grant a call before the deadline.
    """

    def __init__(self, client: Client, settings: TemporalConnection, deadline: float) -> None:
        self.client = client
        self.settings = settings
        self.namespace = settings.namespace
        self.deadline = deadline
        self.service = client.workflow_service
        self.visibility_calls = 0

    def time_left(self) -> timedelta:
        """What is left of the check's deadline (at least 1 ms): every call's gRPC timeout."""
        return timedelta(seconds=max(0.001, self.deadline - asyncio.get_running_loop().time()))

    async def _visibility(self) -> timedelta:
        await budget(self.settings.address).acquire(self.deadline)
        self.visibility_calls += 1
        return self.time_left()

    # -- visibility calls (budgeted) ---------------------------------------------------------
    async def count(self, query: str) -> CountWorkflowExecutionsResponse:
        timeout = await self._visibility()
        request = CountWorkflowExecutionsRequest(namespace=self.namespace, query=query)
        return await self.service.count_workflow_executions(request, timeout=timeout)

    async def list_workflows(self, query: str, page_size: int) -> ListWorkflowExecutionsResponse:
        timeout = await self._visibility()
        request = ListWorkflowExecutionsRequest(
            namespace=self.namespace, query=query, page_size=page_size
        )
        return await self.service.list_workflow_executions(request, timeout=timeout)

    async def list_schedules(
        self, query: str, page_size: int, token: bytes = b""
    ) -> ListSchedulesResponse:
        timeout = await self._visibility()
        request = ListSchedulesRequest(
            namespace=self.namespace,
            maximum_page_size=page_size,
            next_page_token=token,
            query=query,
        )
        return await self.service.list_schedules(request, timeout=timeout)

    async def describe_task_queue(self, **fields: Any) -> DescribeTaskQueueResponse:
        """DescribeTaskQueue (a visibility call on the server) with ``fields`` set."""
        timeout = await self._visibility()
        name = fields.pop("task_queue")
        request = DescribeTaskQueueRequest(
            namespace=self.namespace, task_queue=TaskQueue(name=name), **fields
        )
        return await self.service.describe_task_queue(request, timeout=timeout)

    # -- execution calls (not in the visibility bucket) --------------------------------------
    async def describe_workflow(
        self, workflow_id: str, run_id: str = ""
    ) -> DescribeWorkflowExecutionResponse:
        request = DescribeWorkflowExecutionRequest(
            namespace=self.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
        return await self.service.describe_workflow_execution(request, timeout=self.time_left())

    async def last_events(self, workflow_id: str, run_id: str, count: int) -> list[HistoryEvent]:
        """The newest ``count`` history events, newest first."""
        request = GetWorkflowExecutionHistoryReverseRequest(
            namespace=self.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            maximum_page_size=count,
        )
        response = await self.service.get_workflow_execution_history_reverse(
            request, timeout=self.time_left()
        )
        return list(response.history.events)

    async def describe_schedule(self, schedule_id: str) -> DescribeScheduleResponse:
        request = DescribeScheduleRequest(namespace=self.namespace, schedule_id=schedule_id)
        return await self.service.describe_schedule(request, timeout=self.time_left())


def namespace_missing(exc: RPCError) -> bool:
    """Whether ``exc`` is the server saying the namespace itself does not exist."""
    if exc.status != RPCStatusCode.NOT_FOUND:
        return False
    details = getattr(exc.grpc_status, "details", [])
    if any(d.type_url.endswith("NamespaceNotFoundFailure") for d in details):
        return True
    return exc.message.startswith("Namespace ") and "not found" in exc.message


def rpc_reason(exc: RPCError, namespace: str = "") -> str:
    """The server's error, with what to do when it is its rate limit or a config mistake."""
    if namespace_missing(exc):
        return (
            f"namespace {shown(namespace)} not found (check the namespace key; "
            "`temporal operator namespace list` lists them)"
        )
    if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return (
            f"{exc.message} (the server's rate limit: lower temporal.max_visibility_rps "
            "or raise frontend.namespaceRPS.visibility)"
        )
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return server_query_error(exc.message)
    return exc.message


def safe(result: CheckResult) -> CheckResult:
    """``result`` with every string the server could have put in it made printable.

    Ids, types, queue names and failure messages come from the server: in details
    and log rows they stay whole (structured fields) but with control and bidi
    characters escaped (:func:`server.core.text.printable`); messages name ids
    through :func:`server.core.text.shown` (shortened) and the runner makes every
    message printable.
    """
    result.details = printable_tree(result.details)
    result.logs = [
        replace(e, message=printable(e.message), context=printable_tree(e.context))
        for e in result.logs
    ]
    result.metrics = [replace(m, tags=printable_tree(m.tags)) for m in result.metrics]
    return result


class TemporalChecker(Checker[SettingsT]):
    """Base of the Temporal checkers: subclasses implement :meth:`inspect`.

    A server that cannot be reached, refuses a call or whose budget is used up
    gives UNKNOWN with the reason (we lost sight of the server, not of what it runs).
    """

    timeout_status: ClassVar[Status] = Status.UNKNOWN

    def describe(self) -> str:
        return f"Temporal at {self.settings.address}"

    async def check_async(self, ctx: CheckContext) -> CheckResult:
        # A budget wait must end before the runner's deadline, or the check would
        # time out instead of saying that the budget was the reason.
        deadline = asyncio.get_running_loop().time() + ctx.timeout - DEADLINE_MARGIN
        try:
            client = await shared_client(self.settings)
            return safe(await self.inspect(TemporalSession(client, self.settings, deadline), ctx))
        except BudgetExhausted as exc:
            return CheckResult(Status.UNKNOWN, f"{self.describe()}: {exc}")
        except RPCError as exc:
            if exc.status == RPCStatusCode.DEADLINE_EXCEEDED or exc.message == "Timeout expired":
                # The call's gRPC deadline is the check's: one wording for both.
                return CheckResult(Status.UNKNOWN, f"{self.describe()}: {timed_out(ctx.timeout)}")
            reason = rpc_reason(exc, self.settings.namespace)
            return CheckResult(Status.UNKNOWN, clip(f"{self.describe()}: {reason}", 500))
        except RuntimeError as exc:  # connection failures surface as RuntimeError in the SDK
            tls = self.settings.tls is not False
            reason = connect_reason(self.settings.address, str(exc), ctx.timeout, tls)
            return CheckResult(Status.UNKNOWN, clip(f"{self.describe()}: {reason}", 500))

    async def inspect(self, session: TemporalSession, ctx: CheckContext) -> CheckResult:
        """The check itself, given a session on the shared client."""
        raise NotImplementedError
