"""The config's numeric settings, found from the models: tests that walk every one."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from server.config.models import Config


def numeric_settings() -> list[tuple[str, str]]:
    """(section, key as written) of every int or float setting directly in a section model."""
    found = []
    for section, info in Config.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, field in model.model_fields.items():
            args = typing.get_args(field.annotation) or (field.annotation,)
            if any(a in (int, float) for a in args) and field.annotation is not bool:
                found.append((section, field.alias or name))
    return found
