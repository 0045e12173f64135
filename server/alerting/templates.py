"""Annotation templates: user-written Jinja, so sandboxed.

Rendered as text; the HTML email template escapes them where it embeds them.
Kept apart from the rules so config checks can compile templates without
importing the engine.
"""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import SandboxedEnvironment

_templates = SandboxedEnvironment(autoescape=False)


def compile_template(text: str) -> Any:
    """Raises jinja2.TemplateSyntaxError, reported at config load."""
    return _templates.from_string(text)
