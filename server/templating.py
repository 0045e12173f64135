"""Jinja environments for the text we render outside Flask (notifications, reports).

One place decides the template root and that HTML is autoescaped.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def environment(folder: str) -> Environment:
    """Templates under ``templates/<folder>``; ``.html`` autoescaped, ``.txt`` not."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES / folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
