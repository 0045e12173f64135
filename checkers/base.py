"""The checker contract: settings in, :class:`CheckResult` out.

A checker knows nothing about scheduling, storage or alerting. It is built once
per service from its validated ``Settings`` (so it may keep state between
checks, like the last pid seen) and called with a :class:`CheckContext`.

Two kinds, one contract:

- a network checker implements ``async def check_async(ctx)`` and runs on the
  scheduler's event loop, with every read, write, connect and lookup cut by one
  hard deadline (``ctx.timeout`` from the start of the check);
- a checker of local state (``/proc``, the host) implements ``def check(ctx)``
  and runs in a bounded thread pool; its result is recorded by the deadline
  whether or not the thread has returned (a late result is dropped).

Either way the runner (:mod:`server.runner`) records ``timeout_status``
"timed out after 3.0 s" at the deadline; the checker never has to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from server.core.status import Status, worst
from server.core.strict import StrictModel

__all__ = [
    "CheckContext",
    "CheckResult",
    "Checker",
    "LogEntry",
    "Metric",
    "Settings",
    "Status",
    "invalid",
    "over_thresholds",
    "timed_out_message",
    "worst",
]


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LogEntry:
    level: str
    message: str
    source: str = ""
    error_code: str | None = None
    stack_trace: str | None = None
    context: dict[str, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    response_time_ms: int | None = None
    cpu_usage: float | None = None
    memory_usage: float | None = None
    metrics: list[Metric] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)


@dataclass(frozen=True)
class CheckContext:
    service_id: str
    now: datetime
    timeout: float  # seconds


def timed_out_message(timeout: float) -> str:
    """``"timed out after 3.0 s"``: the one wording of a deadline passed."""
    return f"timed out after {timeout:.1f} s"


def invalid(message: str) -> PydanticCustomError:
    """A settings validation error worded ``expected …``; the loader appends the bad value."""
    return PydanticCustomError("lightbulb", message)


class Settings(StrictModel):
    """Base of every checker's settings: unknown keys and mistyped values are config
    errors (:mod:`server.core.strict`)."""


SettingsT = TypeVar("SettingsT", bound=BaseModel)


class Checker(Generic[SettingsT]):
    """Subclasses set ``Settings`` and implement :meth:`check`.

    Generic in its settings type, so ``self.settings`` is typed in every checker
    without each one re-declaring it in an ``__init__``.
    """

    Settings: ClassVar[type[BaseModel]] = Settings
    #: The verdict when a check does not finish by its deadline: FAILED for a target
    #: that does not answer in time, UNKNOWN where the deadline says nothing about it.
    timeout_status: ClassVar[Status] = Status.UNKNOWN

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    def check(self, ctx: CheckContext) -> CheckResult:
        """Blocking check, run in a worker thread; override this or :meth:`check_async`."""
        raise NotImplementedError

    async def check_async(self, ctx: CheckContext) -> CheckResult:
        """Non-blocking check, run on the scheduler's event loop under a hard deadline."""
        raise NotImplementedError

    def describe(self) -> str:
        """What is checked, as messages start (``GET https://…``, ``db:5432``); may be empty."""
        return ""

    @classmethod
    def is_async(cls) -> bool:
        """True when the class implements :meth:`check_async` (it runs on the event loop)."""
        return cls.check_async is not Checker.check_async

    def close(self) -> None:
        """Release clients or files; called when the service is removed or the daemon stops."""


def over_thresholds(values: Mapping[str, float | None], limits: BaseModel | None) -> list[str]:
    """Names of values above their configured limit, worded for a status message."""
    if limits is None:
        return []
    breaches = []
    for name, limit in limits.model_dump(exclude_none=True).items():
        value = values.get(name)
        if value is not None and value > limit:
            breaches.append(f"{name} {value:g} > {limit:g}")
    return breaches
