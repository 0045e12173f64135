"""Jinja environments for the text we render outside Flask (notifications, reports).

One place decides the template root and that HTML is autoescaped.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.core.redact import finalize
from server.core.text import displayable
from server.resources import templates_dir

TEMPLATES = templates_dir()


def environment(folder: str) -> Environment:
    """Templates under ``templates/<folder>``; ``.html`` autoescaped, ``.txt`` not."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES / folder),
        autoescape=select_autoescape(["html"]),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _finalize(value: Any) -> Any:
    """Secrets masked (:func:`finalize`) and, in text, NUL, BEL, ESC … as U+FFFD: the
    rule the dashboard's templates keep, so the stored daily report that /reports/<day>
    shows, and an HTML mail, never carry a character a page cannot."""
    value = finalize(value)
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return displayable(value)
    return value
