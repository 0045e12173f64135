"""Jinja environments for the text we render outside Flask (notifications, reports).

One place decides the template root and that HTML is autoescaped.
"""

from __future__ import annotations

from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.core.redact import finalize
from server.resources import templates_dir

TEMPLATES = templates_dir()


def environment(folder: str) -> Environment:
    """Templates under ``templates/<folder>``; ``.html`` autoescaped, ``.txt`` not."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES / folder),
        autoescape=select_autoescape(["html"]),
        finalize=finalize,  # secrets masked in every notice and report
        trim_blocks=True,
        lstrip_blocks=True,
    )
