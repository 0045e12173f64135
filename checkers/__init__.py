"""Checkers: one module per service type, found through :data:`REGISTRY`.

A service's ``type`` names its checker; the block named after the type holds the
checker's own settings and is validated by the checker's settings model at
config load. Types whose checker has not been written yet accept any mapping.
"""

from __future__ import annotations

import importlib
from typing import Any

SERVICE_TYPES: tuple[str, ...] = (
    "python_process",
    "temporal_workflow",
    "http",
    "tcp",
    "host",
    "command",
)

# type name -> "module:Class". Lazily imported so that a broken or heavy checker
# (temporalio) costs nothing to configs that do not use it.
REGISTRY: dict[str, str] = {}


def settings_model(service_type: str) -> Any | None:
    """The pydantic model validating ``service_type``'s block, or None if not registered."""
    target = REGISTRY.get(service_type)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    checker = getattr(importlib.import_module(module_name), class_name)
    return checker.Settings
