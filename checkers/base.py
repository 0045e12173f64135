"""The checker contract: settings in, :class:`CheckResult` out.

A checker knows nothing about scheduling, storage or alerting. It is built once
per service from its validated ``Settings`` (so it may keep state between
checks, like the last pid seen) and called with a :class:`CheckContext`. It
should honour ``ctx.timeout`` in its own I/O; the scheduler enforces it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from server.core.status import Status, worst

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


def invalid(message: str) -> PydanticCustomError:
    """A settings validation error worded ``expected …``; the loader appends the bad value."""
    return PydanticCustomError("lightbulb", message)


class Settings(BaseModel):
    """Base of every checker's settings: unknown keys are config errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


SettingsT = TypeVar("SettingsT", bound=BaseModel)


class Checker(Generic[SettingsT]):
    """Subclasses set ``Settings`` and implement :meth:`check`.

    Generic in its settings type, so ``self.settings`` is typed in every checker
    without each one re-declaring it in an ``__init__``.
    """

    Settings: ClassVar[type[BaseModel]] = Settings

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    def check(self, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError

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
