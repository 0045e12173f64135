"""Checkers: one module per service type, found through :data:`REGISTRY`.

A service's ``type`` names its checker; the block named after the type holds the
checker's own settings and is validated by the checker's settings model at
config load. Types whose checker has not been written yet accept any mapping.
"""

from __future__ import annotations

import importlib
from typing import Any

# type name -> "module:Class". Lazily imported so that a broken or heavy checker
# (temporalio) costs nothing to configs that do not use it.
REGISTRY: dict[str, str] = {
    "python_process": "checkers.python_process:PythonProcessChecker",
    "temporal_workflow": "checkers.temporal_workflow:TemporalWorkflowChecker",
    "http": "checkers.http:HttpChecker",
    "tcp": "checkers.tcp:TcpChecker",
    "host": "checkers.host:HostChecker",
    "command": "checkers.command:CommandChecker",
    "temporal_task_queue": "checkers.temporal_task_queue:TemporalTaskQueueChecker",
    "temporal_schedule": "checkers.temporal_schedule:TemporalScheduleChecker",
    "temporal_stuck": "checkers.temporal_stuck:TemporalStuckChecker",
    "temporal_count": "checkers.temporal_count:TemporalCountChecker",
}
# The service types, in the order error messages list them: the registry's keys, so
# a type cannot be registered without being accepted (or the reverse).
SERVICE_TYPES: tuple[str, ...] = tuple(REGISTRY)


def checker_class(service_type: str) -> Any:
    """The checker class registered for ``service_type`` (imported on first use)."""
    module_name, _, class_name = REGISTRY[service_type].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def settings_model(service_type: str) -> Any | None:
    """The pydantic model validating ``service_type``'s block, or None if not registered."""
    if service_type not in REGISTRY:
        return None
    return checker_class(service_type).Settings


def build_checker(service_type: str, block: dict[str, Any]) -> Any:
    """A checker for one service, from its (already validated) block."""
    cls = checker_class(service_type)
    return cls(cls.Settings.model_validate(block))
